"""A small but complete run on the tiny random model, made by the packages' own jobs, for the app's tests.

`build_fixture_runs(root, model_dir)` writes, under `root`:

- `fixture`: activations + probes (`workbench.probe_job`), eval (`workbench.evaluate_job`), a sweep with
  its report (`workbench.sweep_job`: two statistics vectors always on, one of them probe-gated too, the prompting
  baseline `prompt:skeptical` and the `gated` family trained through its gate), analyses (`interp.analysis.report`: dla, heads) and a
  GGUF export (`steering.export`), each step recorded in run.json;
- `evalonly`: an eval profile and nothing else (the "missing part" messages, and a run to compare).

About 40-60 s on two shared CPU cores. Also a script, to make the screenshots' run by hand:

    python -m tests.app.fixture_run artifacts/   # builds the tiny model too
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

FIXTURE_RUN = "fixture"
EVAL_ONLY_RUN = "evalonly"
TASKS = ("answer", "are_you_sure", "feedback", "mimicry")


def _probes(root: Path, model_dir: Path, log: Callable[[str], None]) -> None:
    from workbench.probe_job import ProbeJobConfig, run_probe_job

    cfg = ProbeJobConfig(run=FIXTURE_RUN, model=str(model_dir), n=6, n_boot=30, n_splits=3, tasks=TASKS,
                         sources=("pressure", "user_vs_third_party"), methods=("mean_diff", "logreg"),
                         positions=("last_prompt",))
    run_probe_job(cfg, root, log)


def _eval(root: Path, run: str, model_dir: Path, n: int) -> None:
    from workbench.evaluate_job import run_eval

    run_eval(run, str(model_dir), ",".join(TASKS), n, None, None, 0, 16, root)


def _analysis(root: Path, model_dir: Path) -> None:
    from dataclasses import asdict

    from interp.analysis.contrasts import make_contrasts
    from interp.analysis.report import AnalysisConfig, AnalysisContext, run_analysis
    from interp.models.loading import load_model
    from interp.store.runs import record_run
    from interp.tasks import build_task

    model = load_model(str(model_dir))
    pairs = make_contrasts(model, build_task("answer", n=12, seed=0), n_pairs=6, seed=0)
    folder = root / FIXTURE_RUN
    for config in (AnalysisConfig(what="dla", layer=2, top_tokens=8),
                   AnalysisConfig(what="heads", layer=2, ks=(1, 2), n_random=2)):
        summary = run_analysis(AnalysisContext(model, pairs, config, None, "", folder / "analysis"))
        record_run(folder, f"analyze-{config.what}", {"data": "answer", **asdict(config)},
                   model=model.provenance(), seeds={"seed": config.seed})
        assert summary["files"]


def _sweep(root: Path, model_dir: Path) -> None:
    from dataclasses import replace

    from steering.evaluation.testset import TestSetConfig
    from steering.methods.learned import LearnConfig
    from steering.sweep import SweepConfig
    from workbench.sweep_job import run_sweep_job

    cfg = SweepConfig(model=str(model_dir), methods=("user_minus_third_party", "caa"), layers=(1, 2),
                      strengths=(-8.0, -4.0, 4.0, 8.0), positions=("generated",),
                      test=TestSetConfig(n_answer=4, n_are_you_sure=2, n_mimicry=2, n_feedback=0, n_capability=4, n_general=2),
                      n_train=8, gen_prompts=1, gen_tokens=6, budget=0.004)
    run_sweep_job(FIXTURE_RUN, cfg, root, overwrite=False)
    # a second invocation adds the probe-gated curve of one vector at one layer (same test set and split)
    run_sweep_job(FIXTURE_RUN, replace(cfg, methods=("user_minus_third_party",), layers=(2,), gate="only"), root,
                  overwrite=False)
    # a third adds the prompting baseline (one cell, no vector) and a vector trained through the layer-2 gate
    learn = LearnConfig(n_pairs=6, steps=2, groups_per_step=3, eval_every=1, val_fraction=0.3, batch_size=16, lr=0.5,
                        tasks=("answer", "mimicry"))
    run_sweep_job(FIXTURE_RUN, replace(cfg, methods=("prompt:skeptical", "gated"), layers=(2,),
                                       family_strengths={"gated": (-2.0, -1.0)}, learn=learn), root, overwrite=False)


def _export(root: Path) -> None:
    from steering.artifacts.steering_vector import SteeringVector
    from steering.export import export_vector

    folder = root / FIXTURE_RUN
    vector = SteeringVector.load(folder / "sweep" / "vectors" / "user_minus_third_party.safetensors")
    export_vector("gguf", vector, folder / "exports" / "user_minus_third_party.gguf", strength=-4.0)


def build_fixture_runs(root: Path, model_dir: Path, log: Callable[[str], None] = lambda _: None) -> Path:
    """Write the fixture runs under `root` (see the module docstring); return `root`."""
    root.mkdir(parents=True, exist_ok=True)
    steps: tuple[tuple[str, Callable[[], None]], ...] = (
        ("probes", lambda: _probes(root, model_dir, log)),
        ("eval", lambda: _eval(root, FIXTURE_RUN, model_dir, 4)),
        ("eval (second run)", lambda: _eval(root, EVAL_ONLY_RUN, model_dir, 3)),
        ("analysis", lambda: _analysis(root, model_dir)),
        ("sweep", lambda: _sweep(root, model_dir)),
        ("export", lambda: _export(root)),
    )
    for name, step in steps:
        start = time.perf_counter()
        step()
        log(f"fixture {name}: {time.perf_counter() - start:.1f}s")
    return root


def main(argv: list[str]) -> None:
    from tests.conftest import build_tiny_model

    root = Path(argv[0] if argv else "artifacts")
    model_dir = build_tiny_model(root / ".tiny-model")
    build_fixture_runs(root, model_dir.resolve(), log=print)
    print(f"fixture runs under {root.resolve()}: {FIXTURE_RUN}, {EVAL_ONLY_RUN}")


if __name__ == "__main__":
    main(sys.argv[1:])
