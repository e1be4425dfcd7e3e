"""`workbench probe`: per-layer probes for every method and label source, with held-out metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from workbench.cli import ArtifactsOpt, ModelOpt, app, fail


def _split(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


def _extras(values: list[str]) -> dict[str, str]:
    """["caa_file=x.json::caa"] -> {"caa_file": "x.json::caa"}.

    Example:
        >>> _extras(["caa_file=data/s.json::caa"])
        {'caa_file': 'data/s.json::caa'}
    """
    out = {}
    for value in values:
        name, sep, spec = value.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise typer.BadParameter(f"--extra {value!r}: expected NAME=PATH::FORMAT")
        out[name.strip()] = spec.strip()
    return out


@app.command()
def probe(
    run: Annotated[str | None, typer.Option("--run", help="run name (ignored with --config)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with `runs:` (and `defaults:`): several runs in one go")] = None,
    model: ModelOpt = "smollm2",
    n: Annotated[int, typer.Option(min=1, help="questions (texts) per task")] = 120,
    tasks: Annotated[str, typer.Option(help="built-in tasks to probe")] = "answer,are_you_sure,feedback,mimicry,caa",
    methods: Annotated[str, typer.Option(help="logreg,mean_diff,lda,pca_diff")] = "logreg,mean_diff,lda,pca_diff",
    sources: Annotated[str, typer.Option(help="comma-separated label sources: pressure, user_vs_third_party, behaviour, contrast, user_opinion, suggestion, wrong_vs_right (the user suggests the wrong vs the right answer: does the model know the user is wrong?)")] = "pressure,user_vs_third_party,behaviour,contrast",
    layers: Annotated[str | None, typer.Option(help="comma list of layers (default: all)")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", min=1, max=100_000)] = 1000,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1)] = 0,
    extra: Annotated[list[str] | None, typer.Option(
        help="NAME=PATH::FORMAT, an A/B file (caa | anthropic) for the contrast generalisation matrix "
             "(repeatable), e.g. caa_file=sycophancy.json::caa")] = None,
    artifacts: ArtifactsOpt = None,
) -> None:
    """Fit probes on artifacts/<run>/activations (cached first if missing) and write artifacts/<run>/probes/."""
    from interp.sites import parse_layers
    from workbench.probe_job import ProbeJobConfig, read_config, run_probe_job

    if config is not None:
        configs = read_config(config)
    elif run is not None:
        layer_list = None if layers is None else tuple(parse_layers(layers))
        configs = [ProbeJobConfig(run=run, model=model, n=n, seed=seed, tasks=_split(tasks) or (), sources=_split(sources) or (),
                                  methods=_split(methods) or (), layers=layer_list, n_boot=n_boot,
                                  extra_data=_extras(extra or []))]
    else:
        fail("give --run NAME or --config FILE")
    for cfg in configs:
        result = run_probe_job(cfg, artifacts, typer.echo)
        for best in result["report"].best_layers:
            typer.echo(f"  best layer {best['layer']:>2} for {best['label_source']}/{best['position']}/"
                       f"{best['method']}: AUROC {best['auroc']:.3f} [{best['auroc_low']:.3f}, {best['auroc_high']:.3f}]")
        typer.echo(f"probe report: {result['folder'] / 'report.json'}")
