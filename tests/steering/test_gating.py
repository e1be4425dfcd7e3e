"""Probe-gated steering: the sweep's per-row decisions equal the live gate in steer(); gates train, save, load."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from steering.apply.spec import SteerSpec
from steering.artifacts.probe_gate import ProbeGate
from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.evaluate import freeze, prompt_tokens, score_strengths
from steering.evaluation.splits import PairSplit
from steering.evaluation.testset import build_test_set
from steering.methods.gates import gate_decisions, gate_rates, gate_summary, gate_training_examples, train_gates
from steering.sweep import SweepConfig, read_table, run_sweep
from steering.sweep.cells import CellContext, SweepCell
from tests.steering.builders import SMALL_TEST, reference_strengths, score_numbers, tie_free_threshold


@pytest.fixture(scope="module")
def half_gate(tiny_model, held_out) -> ProbeGate:  # type: ignore[no-untyped-def]
    """A random last-prompt gate at layer 1 whose threshold splits the test set in two."""
    rng = np.random.default_rng(2)
    u = rng.normal(size=tiny_model.d_model).astype(np.float32)
    gate = ProbeGate(u / np.linalg.norm(u), bias=0.0, threshold=0.0, layer=1, per="last_prompt")
    _, scores = gate_decisions(tiny_model, held_out.examples, gate)
    return dataclasses.replace(gate, threshold=tie_free_threshold(scores))



def test_decisions_are_what_the_live_gate_reads(tiny_model, held_out, half_gate):
    on, scores = gate_decisions(tiny_model, held_out.examples, half_gate)
    assert on.shape == scores.shape == (len(held_out.examples),)
    assert 0 < on.sum() < len(on)  # the mid-gap threshold splits the set
    assert np.abs(scores - half_gate.threshold).min() > 5e-5  # no decision sits within float noise of the threshold
    # the live gate inside steer() (per="last_prompt", fed the real prompt lengths by SteerSpec) reads the same scores
    from steering.apply.generation import encode_prompts

    ids, mask, lengths = encode_prompts(tiny_model, [ex.turns for ex in held_out.examples])
    assert lengths == prompt_tokens(tiny_model, held_out.examples)
    spec = SteerSpec(SteeringVector({1: np.zeros(tiny_model.d_model, np.float32)}, method="zero",
                                    d_model=tiny_model.d_model, model_hash=tiny_model.weights_hash),
                     (1,), "generated", gate=half_gate)
    with torch.no_grad(), spec.context(tiny_model, 1.0, lengths) as s:
        tiny_model.hf(input_ids=ids, attention_mask=mask)
    live = s.gate_scores[:, -1].double().numpy()  # left-padded: the last column is the last prompt token
    np.testing.assert_allclose(live, scores, atol=1e-4)
    assert s.gate_on[:, -1].numpy().tolist() == on.tolist()


@pytest.mark.parametrize("positions", ["generated", "all"])
def test_per_row_decisions_equal_the_live_gate(tiny_model, held_out, vector, half_gate, positions):
    on, _ = gate_decisions(tiny_model, held_out.examples, half_gate)
    strengths = [-4.0, 3.0]
    live = reference_strengths(tiny_model, held_out, SteerSpec(vector, (2,), positions, gate=half_gate), strengths,
                               batch_size=8)
    frozen = freeze(tiny_model, held_out)
    rows = score_strengths(tiny_model, held_out, SteerSpec(vector, (2,), positions), strengths, batch_size=8,
                           frozen=frozen, row_scale=on.astype(float))
    always = score_strengths(tiny_model, held_out, SteerSpec(vector, (2,), positions), strengths, batch_size=8)
    base = score_strengths(tiny_model, held_out, None, [0.0], batch_size=8)[0]
    kl_rows = np.array([on[i] for i in held_out.next_index])
    for a, b, c in zip(live, rows, always, strict=True):
        np.testing.assert_allclose(score_numbers(a.rows), score_numbers(b.rows), atol=1e-4, equal_nan=True)
        torch.testing.assert_close(a.next_logprobs, b.next_logprobs, atol=1e-4, rtol=1e-4)
        # rows the gate keeps off are exactly unsteered, rows it lets through are the always-on ones
        np.testing.assert_allclose(score_numbers(b.rows)[~on], score_numbers(base.rows)[~on], atol=1e-4, equal_nan=True)
        np.testing.assert_allclose(score_numbers(b.rows)[on], score_numbers(c.rows)[on], atol=1e-4, equal_nan=True)
        torch.testing.assert_close(b.next_logprobs[~kl_rows], base.next_logprobs[~kl_rows], atol=1e-4, rtol=1e-4)
        assert not np.allclose(score_numbers(b.rows)[on], score_numbers(base.rows)[on], atol=1e-3, equal_nan=True)
    with pytest.raises(ValueError, match="row_scale has 2 values"):
        score_strengths(tiny_model, held_out, SteerSpec(vector, (2,), positions), [1.0], row_scale=[1.0, 0.0])


def test_gated_cells_all_on_equal_always_on_and_all_off_equal_unsteered(tiny_model, vector, half_gate):
    config = SweepConfig(model="tiny", methods=("caa",), layers=(2,), strengths=(-3.0, 3.0), test=SMALL_TEST,
                         gen_prompts=1, gen_tokens=4)
    context = CellContext(tiny_model, config)
    n = len(context.test.examples)
    plain = context.evaluate(SweepCell("v", vector, (2,), "generated", (-3.0, 3.0)))["rows"]
    on = context.evaluate(SweepCell("v+gate", vector, (2,), "generated", (-3.0, 3.0), half_gate, (True,) * n))["rows"]
    off = context.evaluate(SweepCell("v+gate", vector, (2,), "generated", (-3.0, 3.0), half_gate, (False,) * n))["rows"]
    for a, b, c in zip(plain, on, off, strict=True):
        assert a["gate"] == "off" and a["gated_share"] == 1.0 and b["gate"] == "probe@L1" and c["gated_share"] == 0.0
        for column in ("answer_shift_gain", "kl", "neutral_accuracy_drop", "capability_drop", "repetition"):
            assert a[column] == pytest.approx(b[column], abs=1e-5, nan_ok=True), column
            assert c[column] == pytest.approx(0.0, abs=1e-6, nan_ok=True), column
        assert a["vector_hash"] != b["vector_hash"]  # the gate is part of the cell's identity
    with pytest.raises(ValueError, match="needs both its gate and its decisions"):
        SweepCell("v+gate", vector, (2,), "generated", (1.0,), half_gate, None)


def test_gates_train_on_the_train_split_and_round_trip(tiny_model, held_out, tmp_path: Path):
    split = PairSplit(0, 0.3)
    examples = gate_training_examples(split, n_pairs=3, seed=0)
    assert not {ex.pair_id for ex in examples} & held_out.pair_ids
    assert {ex.task for ex in examples} == {"answer", "are_you_sure", "mimicry", "feedback", "general"}
    # the answer task in many training wordings (never the fact bank's one sentence alone), general requests as negatives
    answer_layouts = {ex.turns[-1].content.split("\n")[0][:12] for ex in examples if ex.task == "answer"}
    assert len(answer_layouts) > 1 and {ex.condition for ex in examples if ex.task == "general"} == {"neutral"}
    gates = train_gates(tiny_model, split, [1, 2], tmp_path / "acts", n_pairs=3, seed=0)
    assert set(gates) == {1, 2}
    gate = gates[2]
    assert gate.per == "last_prompt" and gate.layer == 2 and gate.meta["label_source"] == "user_opinion"
    assert gate.meta["n_train"] == len(examples) and 0.5 <= gate.meta["train_accuracy"] <= 1.0
    back = ProbeGate.load(gate.save(tmp_path / "g.safetensors"))
    assert np.array_equal(back.direction_unit, gate.direction_unit)
    assert (back.bias, back.scale, back.threshold, back.layer, back.per, back.meta) == \
        (gate.bias, gate.scale, gate.threshold, gate.layer, gate.per, gate.meta)
    on, scores = gate_decisions(tiny_model, held_out.examples, back)
    assert np.array_equal(on, scores > 0.0)
    rates = gate_rates(held_out.examples, on)
    assert set(rates) == {f"{ex.task}/{ex.condition}" for ex in held_out.examples}
    summary = gate_summary(held_out.examples, on)
    assert 0.0 <= summary["hit_rate"] <= 1.0 and summary["n"] > 0
    # refusals name the file and the problem
    vector_file = SteeringVector({1: np.ones(tiny_model.d_model, np.float32)}, method="x",
                                 d_model=tiny_model.d_model).save(tmp_path / "v.safetensors")
    with pytest.raises(ValueError, match="not a workbench probe gate"):
        ProbeGate.load(vector_file)
    with pytest.raises(FileNotFoundError, match="no such gate file"):
        ProbeGate.load(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="per='last_prompt'"):
        gate_decisions(tiny_model, held_out.examples, dataclasses.replace(back, per="token"))


def test_sweep_with_gates_adds_gated_curves_and_resumes(tiny_model, tmp_path: Path):
    config = SweepConfig(model="tiny", methods=("user_minus_third_party",), layers=(2,), strengths=(-2.0, 2.0),
                         test=SMALL_TEST, n_train=3, gen_prompts=1, gen_tokens=4, gate="both")
    result = run_sweep(config, tmp_path / "sweep", tiny_model)
    table = result.table
    assert set(table.method) == {"user_minus_third_party", "user_minus_third_party+gate"}
    assert len(table) == 2 * 3  # two curves x (two strengths + the anchor)
    gated = table[table.method.str.endswith("+gate")]
    assert (gated.gate == "suggestion@L2").all() and (table[table.gate == "off"].gated_share == 1.0).all()
    record = __import__("json").loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert set(record["gates"]) == {"2"} and 0.0 <= record["gates"]["2"]["test"]["false_positive_rate"] <= 1.0
    gate = ProbeGate.load(tmp_path / "sweep" / "gates" / "layer2.safetensors")
    test = build_test_set(SMALL_TEST, config.split)
    on, _ = gate_decisions(tiny_model, test.examples, gate)
    np.testing.assert_allclose(gated.gated_share.to_numpy(), float(on.mean()))
    assert record["gates"]["2"]["test_rates"] == gate_rates(test.examples, on)
    assert "gate_files" in result.vectors["user_minus_third_party+gate"].meta
    again = run_sweep(config, tmp_path / "sweep", tiny_model)
    assert again.ran == 0 and again.skipped == 6
    pd.testing.assert_frame_equal(read_table(tmp_path / "sweep"), table)
    with pytest.raises(ValueError, match="unknown gate setting"):
        SweepConfig(gate="sometimes")


def test_gate_threshold_is_calibrated_on_no_opinion_prompts_and_a_gate_may_read_an_earlier_layer(tiny_model, tmp_path):
    from steering.methods.gates import GATE_SOURCES

    split = PairSplit(0, 0.3)
    examples = gate_training_examples(split, n_pairs=6, seed=0)
    plain = train_gates(tiny_model, split, [1], tmp_path / "acts", n_pairs=6, seed=0, source="suggestion")[1]
    calibrated = train_gates(tiny_model, split, [1], tmp_path / "acts", n_pairs=6, seed=0, source="suggestion",
                             fpr=0.25)[1]
    assert calibrated.meta["label_source"] == "suggestion" and calibrated.meta["fpr"] == 0.25
    np.testing.assert_array_equal(calibrated.direction_unit, plain.direction_unit)  # only the bias moves
    labels = GATE_SOURCES["suggestion"](examples)
    kept = [ex for ex, m in zip(examples, labels.mask, strict=True) if m and ex.condition in ("neutral", "no_challenge")]
    on, _ = gate_decisions(tiny_model, kept, calibrated)
    assert 0.0 < float(np.mean(on)) <= 0.25 + 1.0 / len(kept)  # in-sample: the quantile holds
    with pytest.raises(ValueError, match="unknown gate source"):
        train_gates(tiny_model, split, [1], tmp_path / "acts", n_pairs=6, seed=0, source="vibes")
    # a sweep whose gates all read layer 1, for a curve steered at layer 2
    config = SweepConfig(methods=("user_minus_third_party",), layers=(2,), strengths=(-3.0,), positions=("generated",),
                         test=SMALL_TEST, n_train=3, gen_prompts=0, gate="only", gate_layer=1)
    run_sweep(config, tmp_path / "sweep", tiny_model)
    table = read_table(tmp_path / "sweep")
    assert set(table.gate) == {"suggestion@L1"} and set(table.layer) == {2}
    assert (tmp_path / "sweep" / "gates" / "layer1.safetensors").is_file()
    gates = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["gates"]
    assert gates["2"]["reads_layer"] == 1  # keyed by the steered layer, saying which layer it reads
    with pytest.raises(ValueError, match="after the first steered layer"):
        SweepConfig(methods=("caa",), layers=(2,), gate_layer=3)
