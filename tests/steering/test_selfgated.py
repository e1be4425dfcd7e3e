"""A gate learned with the vector: frozen and without its BCE it trains exactly the gated family's vector; the
saved (hard) gate decides as the soft gate's sign; the selfgated family sweeps behind its own gate with its errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from steering.artifacts.probe_gate import ProbeGate
from steering.evaluation.splits import PairSplit
from steering.evaluation.testset import TestSetConfig, build_test_set
from steering.methods.gates import gate_decisions, gate_features
from steering.methods.learned import CHECKPOINT, LearnConfig, learn_vector
from steering.methods.learned_data import learning_groups
from steering.methods.learned_gate import SelfGateConfig, learn_selfgated, learned_gate
from steering.sweep import SweepConfig, read_table, run_sweep

SPLIT = PairSplit(0, 0.3)
TINY = LearnConfig(layers=(1,), n_pairs=6, steps=4, groups_per_step=3, eval_every=2, patience=10, val_fraction=0.3,
                   batch_size=16, lr=0.5, tasks=("answer", "mimicry"))


def _probe_gate(d_model: int) -> ProbeGate:
    """A last-prompt gate on a fixed random direction (it fires on some training rows, not all)."""
    u = np.random.default_rng(0).normal(size=d_model).astype(np.float32)
    return ProbeGate(u / np.linalg.norm(u), 0.0, 0.0, layer=1, scale=3.0, per="last_prompt")


def test_a_frozen_gate_without_bce_trains_exactly_the_gated_vector(tiny_model):
    gate = _probe_gate(tiny_model.d_model)
    gated = learn_vector(tiny_model, SPLIT, TINY, gate=gate)
    assert 0.0 < gated.meta["gate"]["fired_on_training_rows"] < 1.0
    frozen = learn_selfgated(tiny_model, SPLIT, TINY, gate, SelfGateConfig(bce=0.0, lr=0.0))
    np.testing.assert_array_equal(frozen.directions[1], gated.directions[1])
    assert frozen.method == "selfgated:correct" and learned_gate(frozen.meta).to_record() == gate.to_record()
    with pytest.raises(ValueError, match="temperature"):
        SelfGateConfig(temperature=0.0)


def test_the_saved_gate_decides_as_the_soft_gate_and_learned(tiny_model, tmp_path: Path):
    gate = _probe_gate(tiny_model.d_model)
    settings = SelfGateConfig(bce=1.0, lr=0.003, temperature=0.5, n_general=4)
    vector = learn_selfgated(tiny_model, SPLIT, TINY, gate, settings, folder=tmp_path)
    saved = learned_gate(vector.meta)
    assert saved is not None and saved.threshold == 0.0 and saved.per == "last_prompt" and saved.layer == 1
    best = load_file(str(tmp_path / CHECKPOINT))
    g, c = torch.from_numpy(best["best.gate.weight"]), float(best["best.gate.bias"])
    assert float((g - torch.from_numpy(gate.scale * gate.direction_unit)).abs().max()) > 1e-3  # the gate learned
    bce = [h["gate_bce"] for h in vector.meta["history"]]
    assert len(bce) == TINY.steps and all(np.isfinite(bce))
    train, val = learning_groups(SPLIT, TINY.tasks, TINY.n_pairs, TINY.seed, TINY.wording, (), TINY.val_fraction)
    examples = [ex for group in (*train, *val) for ex in group.examples.values()]
    X = torch.from_numpy(gate_features(tiny_model, examples, saved))
    soft = torch.sigmoid((X @ g + c) / settings.temperature)
    on, _ = gate_decisions(tiny_model, examples, saved)
    assert 0 < on.sum() < len(on)
    np.testing.assert_array_equal(on, (soft > 0.5).numpy())


def test_selfgated_family_sweeps_behind_its_learned_gate_with_its_errors(tiny_model, tmp_path: Path):
    test = TestSetConfig(n_answer=3, n_are_you_sure=0, n_mimicry=0, n_feedback=0, n_capability=1, n_general=3)
    learn = replace(TINY, steps=2, eval_every=1)
    config = SweepConfig(methods=("selfgated", "gated"), layers=(1,), strengths=(-2.0, 2.0), positions=("generated",),
                         test=test, n_train=6, gen_prompts=0, family_strengths={"selfgated": (-1.0,), "gated": (-1.0,)},
                         learn=learn, budget=10.0)
    folder = tmp_path / "sweep"
    result = run_sweep(config, folder, tiny_model)
    table = read_table(folder)
    mine = table[table.method == "selfgated:correct"]
    assert sorted(mine.strength) == [-1.0, 0.0] and set(mine.gate) != {"off"}
    vector = result.vectors["selfgated:correct"]
    gate = learned_gate(vector.meta["layers"]["1"])
    assert gate is not None and gate.meta["learned"].startswith("jointly")
    record = json.loads((folder / "sweep.json").read_text())
    own = record["vectors"]["selfgated:correct"]["gates"]["1"]
    assert set(own["test_errors"]) >= {"neutral_fires", "general_fires", "third_party_fires", "opinion_misses"}
    assert ProbeGate.load(own["file"]).to_record() == gate.to_record()
    assert vector.meta["gate_files"] == {"1": own["file"]} and own["file"] != record["gates"]["1"]["file"]
    # its cells steer exactly the test rows its learned gate fires on (the gated family's, the probe gate's)
    examples = build_test_set(replace(config.test, seed=config.seed), config.split).examples
    on, _ = gate_decisions(tiny_model, examples, gate)
    assert mine[mine.strength == -1.0].gated_share.iloc[0] == pytest.approx(float(np.mean(on)))
    assert run_sweep(config, folder, tiny_model).ran == 0  # resumed: the vector and its gate reused
