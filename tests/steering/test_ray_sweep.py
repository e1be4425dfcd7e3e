"""`run_sweep(..., ray=...)` and `workbench sweep --ray` over a local 2-worker Ray cluster equal the in-process sweep.

Skipped when Ray is not installed (`pip install '.[ray]'`). One 2-CPU cluster serves the module.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from typer.testing import CliRunner  # noqa: E402

from interp.capture.ray_pool import RayOptions  # noqa: E402
from steering.evaluation.testset import TestSetConfig  # noqa: E402
from steering.sweep import KEY, SweepConfig, run_sweep  # noqa: E402
from workbench.cli import app  # noqa: E402

TEST = TestSetConfig(n_answer=2, n_are_you_sure=1, n_mimicry=1, n_feedback=0, n_capability=1, n_general=2)


def canonical(table: pd.DataFrame, order: list[str] = KEY) -> pd.DataFrame:
    return table.drop(columns=["seconds"], errors="ignore").sort_values(order).reset_index(drop=True)


def test_a_sweep_on_ray_equals_the_in_process_sweep(ray_cluster, tiny_model, tiny_model_dir, tmp_path):
    config = SweepConfig(model=str(tiny_model_dir), methods=("caa",), layers=(1, 2), strengths=(-2.0, 2.0, 4.0),
                         positions=("generated", "all"), n_train=4, gen_prompts=1, gen_tokens=3, k_batch=2, test=TEST)
    ref = run_sweep(config, tmp_path / "local", tiny_model)
    messages: list[str] = []
    got = run_sweep(config, tmp_path / "ray", tiny_model, ray=RayOptions(workers=2),
                    progress=lambda n, m: messages.append(m))
    assert got.ran == ref.ran == 16 and len(messages) == 8  # 2 layers x 2 positions x (-2,0,2 | 4)
    pd.testing.assert_frame_equal(canonical(got.table), canonical(ref.table), check_exact=True)
    order = [*KEY, "prompt"]
    pd.testing.assert_frame_equal(canonical(pd.read_parquet(tmp_path / "ray" / "generations.parquet"), order),
                                  canonical(pd.read_parquet(tmp_path / "local" / "generations.parquet"), order))
    local, remote = (json.loads((tmp_path / d / "sweep.json").read_text()) for d in ("local", "ray"))
    assert remote["baseline"] == local["baseline"] and remote["fingerprint"] == local["fingerprint"]
    info = remote["invocations"][-1]["ray"]
    assert info["retried"] == 0 and len(set(info["workers"])) == 2
    # a second call on the same folder has nothing left to do (resume works the same way over Ray)
    again = run_sweep(config, tmp_path / "ray", tiny_model, ray=RayOptions(workers=2))
    assert again.ran == 0 and again.skipped == 16


def test_sweep_command_with_ray(ray_cluster, tiny_model_dir, tmp_path):
    args = ["sweep", "--run", "r", "--artifacts", str(tmp_path), "--model", str(tiny_model_dir), "--method", "caa",
            "--layers", "1", "--strengths", "-2,2", "--n-test", "2", "--n-small", "1", "--n-feedback", "0",
            "--n-capability", "1", "--n-train", "4", "--gen-prompts", "0", "--gate", "both"]
    local = CliRunner().invoke(app, args)
    assert local.exit_code == 0, local.output
    remote = CliRunner().invoke(app, [*args[:2], "r2", *args[3:], "--ray", "local", "--workers", "2"])
    assert remote.exit_code == 0, remote.output
    a, b = (pd.read_parquet(tmp_path / r / "sweep" / "cells.parquet") for r in ("r", "r2"))
    assert len(a) == 6 and set(a.method) == {"caa", "caa+gate"}  # gated cells travel to the workers too
    pd.testing.assert_frame_equal(canonical(b), canonical(a), check_exact=True)
    record = json.loads((tmp_path / "r2" / "sweep" / "sweep.json").read_text())
    assert len(record["invocations"][-1]["ray"]["workers"]) == 2
