"""`workbench eval`: a model's sycophancy profile on the task suite or an external file."""

from __future__ import annotations

from typing import Annotated

import typer

from workbench.cli import ArtifactsOpt, ModelOpt, RunOpt, app

DEFAULT_TASKS = "answer,are_you_sure,feedback,mimicry"


@app.command("eval")
def evaluate(
    run: RunOpt,
    model: ModelOpt = "smollm2",
    tasks: Annotated[str, typer.Option(help="comma list of built-in tasks")] = DEFAULT_TASKS,
    n: Annotated[int | None, typer.Option(min=1, help="questions (or texts) per task, or records of --data; default: a 10-minute size")] = None,
    data: Annotated[str | None, typer.Option(help="an external file to evaluate instead of --tasks")] = None,
    format: Annotated[str | None, typer.Option(help="caa | anthropic | sycophancy-eval | arc (with --data)")] = None,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="seed of the task subsets and the bootstrap")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    letters: Annotated[bool, typer.Option(help="also score every item in letter format (A/B/...) beside content")] = False,
    artifacts: ArtifactsOpt = None,
) -> None:
    """Score the model and write artifacts/<run>/eval/{eval.json, scores.parquet}."""
    from workbench.evaluate_job import print_profile, run_eval

    result = run_eval(run=run, model_spec=model, tasks=tasks, n=n, data=data, data_format=format, seed=seed,
                      batch_size=batch_size, artifacts=artifacts, letters=letters)
    print_profile(result["profile"])
    typer.echo(f"eval written to {result['folder']}")
