"""steering.sweep.run on the tiny model: one row per cell, resume skips done cells, the CLI writes the artifacts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from steering.evaluation.testset import TestSetConfig
from steering.sweep import QUICK, SweepConfig, SweepConfigError, read_table, run_sweep
from workbench.cli import app
from workbench.commands.sweep import parse_floats

TINY_TEST = TestSetConfig(n_answer=2, n_are_you_sure=1, n_mimicry=1, n_feedback=0, n_capability=1, n_general=2)


def _config(**changes) -> SweepConfig:  # type: ignore[no-untyped-def]
    base = SweepConfig(methods=("caa",), layers=(1,), strengths=(-2.0, 2.0), positions=("generated",),
                       test=TINY_TEST, n_train=4, gen_prompts=1, gen_tokens=3, k_batch=4)
    return replace(base, **changes)


def test_config_round_trip_and_validation():
    config = _config(methods=("caa", "logreg:contrast"), layers=(1, 2))
    assert SweepConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert SweepConfig.from_dict(QUICK.to_dict()) == QUICK
    # a sweep.json from when the scorer was an option ("cached" or "full") still reads
    assert SweepConfig.from_dict({**config.to_dict(), "scorer": "full"}) == config
    with pytest.raises(ValueError, match="unknown vector method"):
        _config(methods=("nope",))
    with pytest.raises(ValueError, match="--method or --vector"):
        _config(methods=())


def test_sweep_writes_one_row_per_cell_and_resumes(tiny_model, tmp_path):
    folder = tmp_path / "sweep"
    calls: list[tuple[int, str]] = []
    first = run_sweep(_config(), folder, tiny_model, progress=lambda n, msg: calls.append((n, msg)))
    assert first.ran == 3 and first.skipped == 0  # -2, 2 and the free strength-0 anchor
    assert [n for n, _ in calls] == [3]  # one batched pass: K counts the steered strengths, 0 rides along
    table = read_table(folder)
    assert len(table) == 3 and set(table.strength) == {-2.0, 0.0, 2.0}
    assert {"answer_shift_gain", "answer_shift_gain_low", "answer_control_shift_change", "kl", "kl_high",
            "neutral_accuracy_drop", "user_right_accuracy_drop", "capability_drop", "degenerate", "norm",
            "relative_norm", "vector_hash"} <= set(table.columns)
    assert (table.norm == table.strength.abs() * table.vector_norm).all()
    record = json.loads((folder / "sweep.json").read_text())
    assert record["config"]["strengths"] == [-2.0, 2.0] and record["split"]["n_test_pairs"] > 0
    assert record["vectors"]["caa"]["split_checked"] is True
    # resume: the three cells are skipped, only the new strength runs
    again = run_sweep(_config(strengths=(-2.0, 2.0, 4.0)), folder, tiny_model)
    assert again.ran == 1 and again.skipped == 3
    table2 = read_table(folder)
    assert len(table2) == 4
    pd.testing.assert_frame_equal(table2[table2.strength == -2.0].reset_index(drop=True),
                                  table[table.strength == -2.0].reset_index(drop=True))
    zero = table2[table2.strength == 0.0].iloc[0]
    assert zero.kl == 0.0 and zero.answer_shift_gain == 0.0
    gens = pd.read_parquet(folder / "generations.parquet")
    # per strength: a neutral question, the same with the user right, and a general prompt (free text)
    assert len(gens) == 12 and set(gens.prompt) == {0, 1, 2} and set(gens.strength) == {-2.0, 0.0, 2.0, 4.0}
    assert {"general_degenerate", "degenerate"} <= set(table2.columns)
    record = json.loads((folder / "sweep.json").read_text())
    assert len(record["invocations"]) == 2 and record["status"] == "complete" and "baseline" in record
    # another test set in the same folder is refused unless overwritten
    with pytest.raises(SweepConfigError, match="another"):
        run_sweep(_config(test=replace(TINY_TEST, n_answer=3)), folder, tiny_model)
    fresh = run_sweep(_config(test=replace(TINY_TEST, n_answer=3)), folder, tiny_model, overwrite=True)
    assert fresh.ran == 3 and len(read_table(folder)) == 3


def test_parse_floats():
    assert parse_floats("-8,-4, 4,8") == (-8.0, -4.0, 4.0, 8.0)
    with pytest.raises(ValueError, match="expected numbers"):
        parse_floats("a,b")


def test_cli_sweep_writes_parquet_report_and_figures(tiny_model_dir, tmp_path):
    result = CliRunner().invoke(app, [
        "sweep", "--run", "t", "--model", str(tiny_model_dir), "--method", "caa,user_minus_third_party",
        "--layers", "1,2", "--strengths", "-4,-2,2", "--positions", "all,generated", "--n-test", "2",
        "--n-small", "1", "--n-feedback", "0", "--n-capability", "1", "--n-train", "4", "--gen-prompts", "1",
        "--gen-tokens", "3", "--budget", "1000", "--artifacts", str(tmp_path)])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "t" / "sweep"
    table = pd.read_parquet(folder / "cells.parquet")
    assert len(table) == 2 * 2 * 4 * 2  # methods x layers x (strengths + the 0 anchor) x positions
    report = json.loads((folder / "report.json").read_text())
    assert report["gain"] == "answer_shift_gain" and report["loss"] == "kl_all"
    assert len(report["fits"]) > 0 and "gain_linear_r2" in report["fits"][0]
    for name in ("trade_off", "pareto", "tasks"):
        assert Path(report["figures"][name]["png"]).stat().st_size > 1000
        assert "plotly" in Path(report["figures"][name]["html"]).read_text()
    if report["operating_point"] is not None:
        assert (folder / "recommended.safetensors").is_file()
    assert "operating point" in result.output
    assert json.loads((tmp_path / "t" / "run.json").read_text())["steps"]["sweep"]["config"]["layers"] == [1, 2]
    again = CliRunner().invoke(app, [
        "sweep", "--run", "t", "--model", str(tiny_model_dir), "--method", "caa", "--layers", "1", "--strengths", "-4",
        "--positions", "all", "--n-test", "2", "--n-small", "1", "--n-feedback", "0", "--n-capability", "1",
        "--n-train", "4", "--gen-prompts", "1", "--gen-tokens", "3", "--artifacts", str(tmp_path)])
    assert again.exit_code == 0, again.output
    assert "0 cells run, 2 already done" in again.output
    gated = CliRunner().invoke(app, [
        "sweep", "--run", "t", "--model", str(tiny_model_dir), "--method", "caa", "--layers", "1", "--strengths", "-4",
        "--positions", "all", "--n-test", "2", "--n-small", "1", "--n-feedback", "0", "--n-capability", "1",
        "--n-train", "4", "--gen-prompts", "1", "--gen-tokens", "3", "--gate", "both", "--budget", "1000",
        "--artifacts", str(tmp_path)])
    assert gated.exit_code == 0, gated.output
    assert "2 cells run, 2 already done" in gated.output  # only the gated curve is new
    assert "gate caa layer 1 all: always on" in gated.output
    comparison = json.loads((folder / "report.json").read_text())["gate_comparison"]
    assert [(c["method"], c["layer"], c["positions"]) for c in comparison] == [("caa", 1, "all")]
    bad = CliRunner().invoke(app, ["sweep", "--run", "t", "--model", str(tiny_model_dir), "--method", "svm",
                                   "--artifacts", str(tmp_path)])
    assert bad.exit_code == 2 and "unknown vector method" in bad.output


def test_sweep_of_a_vector_file_warns_when_its_split_is_unknown(tiny_model, tmp_path):
    from steering.artifacts.steering_vector import SteeringVector

    rng = np.random.default_rng(0)
    path = SteeringVector({1: rng.normal(size=tiny_model.d_model).astype(np.float32)}, method="random",
                          d_model=tiny_model.d_model, model_hash=tiny_model.weights_hash).save(tmp_path / "r.safetensors")
    result = run_sweep(_config(methods=(), vector_files=(str(path),)), tmp_path / "sweep", tiny_model)
    assert set(result.table.method) == {f"file:{path}"} and result.ran == 3
    assert len(result.warnings) == 1 and "not built on this sweep's split" in result.warnings[0]
    with pytest.raises(ValueError, match="has no layer 2"):
        run_sweep(_config(methods=(), vector_files=(str(path),), layers=(2,)), tmp_path / "other", tiny_model)
