"""`workbench demo`: the main job on the embedded model, ending with the app."""

from __future__ import annotations

from typing import Annotated

import typer

from workbench.cli import ArtifactsOpt, ModelOpt, RunOpt, app


@app.command()
def demo(
    run: RunOpt = "demo",
    model: ModelOpt = "smollm2",
    artifacts: ArtifactsOpt = None,
    open_app: Annotated[bool, typer.Option("--app/--no-app", help="end by serving the app on the demo's artifacts")] = True,
    port: Annotated[int, typer.Option(min=1, max=65535, help="app port")] = 8501,
) -> None:
    """Run the main job on the embedded model: probes, sycophancy profile, steering sweep, then the app."""
    from workbench.demo_job import run_demo

    run_demo(run=run, model_spec=model, artifacts=artifacts, app=open_app, port=port)
