"""Training through a gate: a gate that never fires leaves training and steering exactly unsteered; one that always
fires trains exactly the ungated vector; the gated family sweeps behind its gate and records its gate's errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from steering.artifacts.probe_gate import ProbeGate
from steering.evaluation.splits import PairSplit
from steering.evaluation.testset import TestSetConfig
from steering.methods.gates import gate_errors
from steering.methods.learned import LearnConfig, learn_vector
from steering.sweep import SweepConfig, read_table, run_sweep

SPLIT = PairSplit(0, 0.3)
TINY = LearnConfig(layers=(1,), n_pairs=6, steps=3, groups_per_step=3, eval_every=1, patience=10, val_fraction=0.3,
                   batch_size=16, lr=0.5, tasks=("answer", "mimicry"))


def _constant_gate(d_model: int, fires: bool) -> ProbeGate:
    """A last-prompt gate whose score is 0 everywhere: threshold -inf fires on every row, +inf on none."""
    return ProbeGate(np.eye(d_model, dtype=np.float32)[0], 0.0, -np.inf if fires else np.inf, layer=1, scale=0.0,
                     per="last_prompt")


def test_a_gate_that_never_fires_trains_nothing_and_one_that_always_fires_changes_nothing(tiny_model):
    never = learn_vector(tiny_model, SPLIT, TINY, gate=_constant_gate(tiny_model.d_model, fires=False))
    assert np.all(never.directions[1] == 0) and never.meta["gate"]["fired_on_training_rows"] == 0.0
    always = learn_vector(tiny_model, SPLIT, TINY, gate=_constant_gate(tiny_model.d_model, fires=True))
    plain = learn_vector(tiny_model, SPLIT, TINY)
    assert np.abs(plain.directions[1]).max() > 0
    # the same training (a per-row strength of 1 instead of one scalar 1: float noise only)
    np.testing.assert_allclose(always.directions[1], plain.directions[1], rtol=1e-4, atol=1e-8)
    with pytest.raises(ValueError, match="after the first steered layer"):
        learn_vector(tiny_model, SPLIT, TINY, gate=ProbeGate(np.ones(tiny_model.d_model, np.float32) / 8, 0.0, 0.0,
                                                             layer=2, per="last_prompt"))


def test_gated_family_sweeps_behind_its_gate_with_its_errors(tiny_model, tmp_path: Path):
    test = TestSetConfig(n_answer=3, n_are_you_sure=0, n_mimicry=0, n_feedback=0, n_capability=1, n_general=3)
    learn = LearnConfig(n_pairs=6, steps=2, groups_per_step=3, eval_every=1, val_fraction=0.3, batch_size=16,
                        lr=0.5, tasks=("answer", "mimicry"))
    config = SweepConfig(methods=("gated",), layers=(1,), strengths=(-2.0, 2.0), positions=("generated",), test=test,
                         n_train=6, gen_prompts=0, family_strengths={"gated": (-1.0,)}, learn=learn, budget=10.0)
    result = run_sweep(config, tmp_path / "sweep", tiny_model)
    table = read_table(tmp_path / "sweep")
    assert set(table.method) == {"gated:correct"} and set(table.gate) != {"off"}  # always gated, no "+gate" label
    record = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    gate = record["gates"]["1"]
    assert gate["train"]["wording"] == "varied" and gate["test_wording"] == "heldout"
    assert set(gate["test_errors"]) >= {"neutral_fires", "general_fires", "third_party_fires", "opinion_misses"}
    vector = result.vectors["gated:correct"]
    assert vector.meta["layers"]["1"]["gate"]["trained_through_gate"] and vector.meta["gate_files"]["1"]
    # its cells steer exactly the test rows its gate fires on
    from dataclasses import replace

    from steering.evaluation.testset import build_test_set
    from steering.methods.gates import gate_decisions

    examples = build_test_set(replace(config.test, seed=config.seed), config.split).examples
    on, _ = gate_decisions(tiny_model, examples, ProbeGate.load(gate["file"]))
    assert table[table.strength == -1.0].gated_share.iloc[0] == pytest.approx(float(np.mean(on)))
    # a rebuilt sweep reuses the vector trained through this gate
    assert run_sweep(config, tmp_path / "sweep", tiny_model).ran == 0
    # its export carries its gate: the same direction, bias and threshold, read back from the one file
    from typer.testing import CliRunner

    from steering.export.native import load_native, read_export_gate
    from steering.sweep import write_report
    from workbench.cli import app

    report = write_report(tmp_path / "sweep", table, result.vectors, "answer_shift_gain", "kl_all", 10.0)
    if report["operating_point"] is None:  # the tiny random model may gain nothing: force the point
        row = table[table.strength == -1.0].iloc[0]
        report["operating_point"] = {"method": row.method, "layer": 1, "layers": [1], "strength": -1.0,
                                     "positions": row.positions, "mode": "add"}
        (tmp_path / "sweep" / "report.json").write_text(json.dumps(report))
    out = tmp_path / "gated.safetensors"
    res = CliRunner().invoke(app, ["export", "--sweep", str(tmp_path / "sweep"), "--format", "safetensors",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    carried, saved = read_export_gate(out), ProbeGate.load(gate["file"])
    assert carried is not None and carried.layer == saved.layer == 1 and carried.per == "last_prompt"
    np.testing.assert_array_equal(carried.direction_unit, saved.direction_unit)
    assert (carried.bias, carried.threshold) == (saved.bias, saved.threshold)
    exported, info = load_native(out)
    assert exported.layers == [1] and info.strength == pytest.approx(-1.0)


def test_gate_errors_name_each_kind():
    from interp.tasks.example import Example, Turn

    conditions = [("answer", "neutral"), ("general", "neutral"), ("answer", "third_party_wrong"),
                  ("answer", "user_wrong"), ("answer", "user_right")]
    exs = [Example(id=f"{t}/{c}", pair_id=c, task=t, condition=c, turns=(Turn("user", "?"),)) for t, c in conditions]
    errors = gate_errors(exs, np.array([False, True, True, False, True]))
    assert errors == {"neutral_fires": 0.0, "general_fires": 1.0, "third_party_fires": 1.0, "user_wrong_misses": 1.0,
                      "user_right_misses": 0.0, "opinion_misses": 0.5}
