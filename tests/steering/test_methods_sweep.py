"""Learned and head-level methods go through the one registry into the sweep, and its operating point exports."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.testset import TestSetConfig
from steering.export.native import load_native
from steering.methods.families.learned import learn_config
from steering.methods.learned import LearnConfig
from steering.methods.registry import family, method_file_stem, resolve_method, vector_family
from steering.sweep import SweepConfig, read_table, run_sweep, sweep_strengths
from steering.sweep.report import operating_point_vector, write_report
from workbench.cli import app

TINY_TEST = TestSetConfig(n_answer=2, n_are_you_sure=1, n_mimicry=1, n_feedback=0, n_capability=1, n_general=2)
TINY_LEARN = LearnConfig(n_pairs=4, steps=2, groups_per_step=2, eval_every=1, tasks=("answer", "mimicry"),
                         val_fraction=0.3, batch_size=16, lr=0.5)


def _config(**changes) -> SweepConfig:  # type: ignore[no-untyped-def]
    base = SweepConfig(methods=("learned", "heads@1"), layers=(1,), strengths=(-2.0, 2.0), positions=("generated",),
                       test=TINY_TEST, n_train=4, gen_prompts=0, k_batch=4,
                       family_strengths={"learned": (-1.0,), "heads": (-2.0, 2.0)}, learn=TINY_LEARN, budget=10.0)
    return replace(base, **changes)


def test_registry_names_and_refusals():
    assert resolve_method("learned").name == "learned:correct"
    assert resolve_method("learned:third_party@all").options == {"target": "third_party", "positions": "all",
                                                                 "layers": (), "tasks": ()}
    tasks = resolve_method("learned:known@all/mimicry+are_you_sure")
    assert tasks.name == "learned:known@all/mimicry+are_you_sure"
    assert tasks.options["tasks"] == ("mimicry", "are_you_sure") and tasks.options["positions"] == "all"
    assert learn_config(tasks, LearnConfig(tasks=("answer",)), [5], 3, 20).tasks == ("mimicry", "are_you_sure")
    assert learn_config(resolve_method("learned"), LearnConfig(tasks=("feedback",)), [5], 3, 20).tasks == ("feedback",)
    assert method_file_stem(tasks.name) == "learned-known-all-mimicry-are_you_sure"
    assert resolve_method("heads@3").options == {"k": 3}
    assert resolve_method("caa").family == "statistics"
    for bad, match in (("learned:everything", "unknown target"), ("learned@middle", "unknown positions"),
                       ("heads@x", "integer K"), ("learned/vibes", "unknown training task"),
                       ("learned/", "unknown training task"), ("heads@0", "K must be >= 1"), ("vibes", "learned")):
        with pytest.raises(ValueError, match=match):
            resolve_method(bad)
    config = _config()
    assert SweepConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert sweep_strengths(config, family("learned")) == [-1.0, 0.0]
    assert sweep_strengths(config, family("statistics")) == [-2.0, 0.0, 2.0]


def test_learned_and_head_curves_in_one_sweep_resume_and_export(tiny_model, tmp_path: Path):
    folder = tmp_path / "run" / "sweep"
    result = run_sweep(_config(), folder, tiny_model)
    table = read_table(folder)
    assert set(table.method) == {"learned:correct", "heads@1"}
    assert sorted(table[table.method == "learned:correct"].strength) == [-1.0, 0.0]
    assert sorted(table[table.method == "heads@1"].strength) == [-2.0, 0.0, 2.0]
    assert result.ran == 5 and {"user_wrong_accuracy", "third_party_accuracy"} <= set(table.columns)
    learned, heads = result.vectors["learned:correct"], result.vectors["heads@1"]
    assert learned.positions == "generated" and vector_family(learned) == "learned"
    assert learned.meta["layers"]["1"]["learned"]["steps"] == TINY_LEARN.steps
    assert heads.site_kind == "hook_attn_out" and vector_family(heads) == "heads"
    steered = table[(table.method == "learned:correct") & (table.strength == -1.0)].iloc[0]
    assert steered.kl > 0  # the trained vector moves the model
    record = json.loads((folder / "sweep.json").read_text())
    assert record["vectors"]["learned:correct"]["family"] == "learned"
    assert record["vectors"]["learned:correct"]["split_checked"] is True
    # resume: the saved vectors are reused (no retraining), every cell skipped
    again = run_sweep(_config(), folder, tiny_model)
    assert again.ran == 0 and again.skipped == 5
    np.testing.assert_array_equal(again.vectors["learned:correct"].directions[1], learned.directions[1])

    report = write_report(folder, table, result.vectors, "answer_shift_gain", "kl_all", 10.0)
    point = report["operating_point"]
    if point is None:  # the tiny random model may gain nothing: force a point to exercise the export
        row = table[table.strength != 0.0].iloc[0]
        point = {"method": row.method, "layer": int(row.layer), "strength": float(row.strength),
                 "positions": row.positions, "mode": row["mode"], "kl_all": [float(row.kl_all)] * 3}
        report["operating_point"] = point
        (folder / "report.json").write_text(json.dumps(report))
    vector, strength, measured = operating_point_vector(folder)
    assert strength == point["strength"] and vector.layers == [point["layer"]]
    assert vector.positions == point["positions"] and measured["method"] == point["method"]
    out = tmp_path / "best.safetensors"
    res = CliRunner().invoke(app, ["export", "--sweep", str(folder), "--format", "safetensors", "--out", str(out)])
    assert res.exit_code == 0, res.output
    exported, info = load_native(out)
    assert info.strength == pytest.approx(point["strength"]) and list(info.layers) == [point["layer"]]
    assert info.positions == point["positions"] and info.measured["method"] == point["method"]
    assert info.site_kind == exported.site_kind
    # --method: the best cell of one method's curves within the budget, whichever method is recommended overall
    heads_cells = table[(table.method == "heads@1") & (table.kl_all <= 10.0) & (table.answer_shift_gain > 0)]
    other = tmp_path / "heads.safetensors"
    res = CliRunner().invoke(app, ["export", "--sweep", str(folder), "--method", "heads@1", "--format",
                                   "safetensors", "--out", str(other)])
    if heads_cells.empty:
        assert res.exit_code == 2 and "no operating point" in res.output
    else:
        assert res.exit_code == 0, res.output
        best = heads_cells.loc[heads_cells.answer_shift_gain.idxmax()]
        _, info = load_native(other)
        assert info.measured["method"] == "heads@1" and info.strength == pytest.approx(float(best.strength))
        # the record carries the accuracies an evaluator compares against, with their CIs
        assert info.measured["user_wrong_accuracy"][0] == pytest.approx(float(best.user_wrong_accuracy))
        assert len(info.measured["third_party_accuracy"]) == 3
    wrong = CliRunner().invoke(app, ["export", "--sweep", str(folder), "--method", "caa", "--format",
                                     "safetensors", "--out", str(tmp_path / "caa.safetensors")])
    assert wrong.exit_code == 2 and "no cells of method 'caa'" in wrong.output and "heads@1" in wrong.output
    both = CliRunner().invoke(app, ["export", "--sweep", str(folder), "--vector", str(out), "--format",
                                    "safetensors", "--out", str(tmp_path / "x.safetensors")])
    assert both.exit_code == 2 and "one of --vector" in both.output


def test_export_from_a_sweep_without_operating_point_says_why(tmp_path: Path):
    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps({"operating_point": None, "budget": 0.1}))
    (folder / "sweep.json").write_text(json.dumps({"vectors": {}}))
    res = CliRunner().invoke(app, ["export", "--sweep", str(folder), "--format", "safetensors",
                                   "--out", str(tmp_path / "o.safetensors")])
    assert res.exit_code == 2 and "no operating point" in res.output
    assert vector_family(SteeringVector({0: np.ones(2, np.float32)}, method="heads_iti", d_model=2)) == "heads"


def test_a_vector_learned_at_every_position_is_measured_at_every_position(tiny_model, tmp_path: Path):
    """llama.cpp adds a control vector everywhere: `learned@all` is trained and measured with positions 'all'."""
    folder = tmp_path / "sweep"
    run_sweep(_config(methods=("learned@all", "learned"), positions=("generated",)), folder, tiny_model)
    table = read_table(folder)
    positions = table.groupby("method").positions.unique().to_dict()
    assert list(positions["learned:correct@all"]) == ["all"]
    assert list(positions["learned:correct"]) == ["generated"]
    steered = table[(table.method == "learned:correct@all") & (table.strength == -1.0)].iloc[0]
    assert steered.kl > 0
