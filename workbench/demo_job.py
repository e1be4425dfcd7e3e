"""`workbench demo`: the whole flow on the embedded model, small enough for a few minutes on 2 cores.

1. probe: cache activations of a small built-in set (all layers, last_prompt /
   user_claim / answer), score behaviour, fit every probe method on every label
   source, held-out metrics with CIs and the control task;
2. eval: the sycophancy profile on the four tasks with third-party controls;
3. sweep: the quick steering sweep (vectors from a train split, cells on a
   disjoint test split, gain vs loss, fits, operating point);
4. app: Streamlit over the run's artifacts, URL printed (skip with --no-app).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import typer

from interp.store.runs import prepare_run_dir
from workbench.evaluate_job import print_profile, run_eval
from workbench.probe_job import ProbeJobConfig, run_probe_job

DEMO_N = 12  # questions (texts) per task


def run_demo(run: str, model_spec: str, artifacts: Path | None, app: bool, port: int) -> None:
    from steering.sweep import QUICK
    from workbench.sweep_job import print_report, run_sweep_job, sweep_config

    folder = prepare_run_dir(run, artifacts)
    typer.secho("1/4 activations and probes", bold=True)
    probes = run_probe_job(ProbeJobConfig(run=run, model=model_spec, n=DEMO_N, n_boot=200), artifacts, typer.echo)
    typer.echo(f"activation store: {(folder / 'activations').resolve()}")
    for best in probes["report"].best_layers:
        if best["method"] == "logreg":
            typer.echo(f"  best layer {best['layer']:>2} {best['label_source']}/{best['position']}: "
                       f"AUROC {best['auroc']:.2f} [{best['auroc_low']:.2f}, {best['auroc_high']:.2f}]")
    typer.secho("2/4 sycophancy profile", bold=True)
    result = run_eval(run=run, model_spec=model_spec, tasks="answer,are_you_sure,feedback,mimicry", n=DEMO_N,
                      data=None, data_format=None, seed=0, batch_size=16, artifacts=artifacts)
    print_profile(result["profile"])
    typer.secho("3/4 steering sweep (quick)", bold=True)
    sweep = run_sweep_job(run, sweep_config(True, {"model": model_spec}, {}), artifacts, overwrite=False)
    print_report(sweep["report"])
    typer.echo(f"\nartifacts: {folder.resolve()}  (sweep preset: {len(QUICK.layers)} layers, quick test set)")
    if not app:
        typer.echo(f"open them with: workbench app --artifacts {folder.parent.resolve()}")
        return
    typer.secho("4/4 app", bold=True)
    from workbench.commands.app import app_script, streamlit_command

    env = {**os.environ, "WORKBENCH_ARTIFACTS": str(folder.parent.resolve())}
    typer.echo(f"workbench app: http://localhost:{port}  (Ctrl+C stops it)")
    try:
        subprocess.call(streamlit_command(app_script(), port, "localhost"), env=env)
    except KeyboardInterrupt:
        pass
