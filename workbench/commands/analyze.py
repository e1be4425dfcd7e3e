"""`workbench analyze`: DLA / activation patching / head attribution into artifacts/<run>/analysis."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli import ArtifactsOpt, ModelOpt, RunOpt, app, fail

WHAT = ("dla", "patching", "heads")


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(k) for k in text.split(",") if k.strip()}))
    except ValueError:
        fail(f"--ks {text!r}: expected comma-separated integers")
    if not ks or min(ks) < 1:
        fail(f"--ks {text!r}: expected positive integers")
    return ks


@app.command()
def analyze(
    run: RunOpt,
    what: Annotated[str, typer.Option(help="dla | patching | heads")],
    model: ModelOpt = "smollm2",
    direction: Annotated[Path | None, typer.Option(help="a SteeringVector file; default: mean difference")] = None,
    layer: Annotated[int | None, typer.Option(help="direction layer (resid_post); default 2/3 of depth")] = None,
    n_pairs: Annotated[int, typer.Option("--n-pairs", min=1, help="question pairs to analyse")] = 40,
    data: Annotated[str, typer.Option(help="built-in task name or Example JSONL")] = "answer",
    clean: Annotated[str, typer.Option(help="condition of the clean run")] = "neutral",
    corrupt: Annotated[str, typer.Option(help="condition of the corrupted run")] = "user_wrong",
    ks: Annotated[str, typer.Option(help="heads: numbers of heads to ablate")] = "1,5,20",
    n_random: Annotated[int, typer.Option("--n-random", min=1, max=10_000, help="heads: random draws per k")] = 8,
    span: Annotated[str, typer.Option(help="heads: ablate at `suffix` (answer side) or `all` positions")] = "suffix",
    rank_by: Annotated[str, typer.Option("--rank-by", help="heads: proj_diff | dla_diff | attn_claim")] = "proj_diff",
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="pair order and random heads")] = 0,
    force: Annotated[bool, typer.Option(help="use a vector made on another model")] = False,
    artifacts: ArtifactsOpt = None,
) -> None:
    """Mechanistic analysis of deference: writes tables, figures and a summary to artifacts/<run>/analysis."""
    import numpy as np
    from tqdm import tqdm

    from interp.analysis.contrasts import make_contrasts
    from interp.analysis.report import ANALYSES, AnalysisConfig, AnalysisContext, run_analysis
    from interp.models.loading import load_model
    from interp.store.runs import prepare_run_dir, record_run
    from steering.artifacts.vector_file import check_vector_fits
    from workbench.data import resolve_examples

    if what not in ANALYSES:
        fail(f"--what {what!r}: choose from {', '.join(ANALYSES)}")
    config = AnalysisConfig(what=what, layer=layer, ks=_ks(ks), n_random=n_random, seed=seed, span=span,
                            rank_by=rank_by)
    folder = prepare_run_dir(run, artifacts, "analysis")
    examples = resolve_examples(data)
    vector: np.ndarray | None = None
    source = ""
    if direction is not None:
        from steering.artifacts.steering_vector import SteeringVector

        sv = SteeringVector.load(direction)
        if layer is None and len(sv.layers) != 1:
            fail(f"{direction} has layers {sv.layers}: choose one with --layer")
        chosen = sv.layers[0] if layer is None else layer
        if chosen not in sv.directions:
            fail(f"{direction} has no layer {chosen} (it has {sv.layers})")
        config = replace(config, layer=chosen)
        vector, source = sv.directions[chosen], f"file {direction} (method {sv.method}, layer {chosen})"
    typer.echo(f"loading {model} ...")
    chat = load_model(model)
    if direction is not None:
        check_vector_fits(sv, direction, chat, force)
    pairs = make_contrasts(chat, examples, clean=clean, corrupt=corrupt, n_pairs=n_pairs, seed=seed)
    typer.echo(f"{len(pairs.contrasts)} pairs ({len(pairs.skipped)} skipped)"
               + ("" if vector is not None else "; direction: mean difference computed from these pairs"))
    passes = {"heads": 2}.get(what, 1)
    with tqdm(total=passes * len(pairs.contrasts), desc=f"analyze {what}", unit="pair") as bar:
        ctx = AnalysisContext(chat, pairs, config, vector, source, folder / "analysis",
                              progress=lambda done, total: bar.update(1))
        summary = run_analysis(ctx)
    record_run(folder, f"analyze-{what}",
               {"what": what, "data": data, "n_pairs": n_pairs, "clean": clean, "corrupt": corrupt,
                "direction": str(direction) if direction else None, **summary["config"]},
               model=chat.provenance(), seeds={"seed": seed})
    if "direction" in summary:
        typer.echo(f"direction: {summary['direction']['source']}")
    typer.echo(f"wrote {len(summary['files'])} files to {(folder / 'analysis').resolve()}")
