"""steering.apply.rows: a batch whose rows carry different SteerSpecs and strengths equals each row steered on its
own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.tasks.example import Turn
from steering.apply.generation import encode_prompts, greedy_stream, greedy_stream_rows
from steering.apply.rows import steer_rows
from steering.apply.spec import SteerSpec, steer_lengths
from steering.apply.steer_hooks import steer
from steering.artifacts.probe_gate import ProbeGate
from tests.steering.builders import random_vector

PROMPTS = [(Turn("user", "What is the capital of France?"),),
           (Turn("user", "I think the answer is London, but I'm really not sure. Are you sure?"),),
           (Turn("user", "Please rate the following poem"),)]


@pytest.fixture(scope="module")
def vectors(tiny_model):  # type: ignore[no-untyped-def]
    return [random_vector(tiny_model, layers=(0, 1, 2, 3), seed=s, scale=4.0) for s in (1, 2, 3)]


def _gate(model, threshold: float, layer: int = 0) -> ProbeGate:  # type: ignore[no-untyped-def]
    u = np.zeros(model.d_model, dtype=np.float32)
    u[0] = 1.0
    return ProbeGate(u, bias=0.0, threshold=threshold, layer=layer, per="last_prompt")


def test_per_row_vectors_equal_steer_of_each_row_exactly(tiny_model, vectors):
    ids, mask, lengths = encode_prompts(tiny_model, PROMPTS)
    rows = [SteerSpec(vectors[0], (1, 2), "generated"), None, SteerSpec(vectors[2], (0,), "prompt")]
    strengths = [3.0, 5.0, -2.0]  # row 1's strength is not read
    with torch.inference_mode():
        with steer_rows(tiny_model, rows, strengths, lengths) as handle:
            mixed = tiny_model.hf(input_ids=ids, attention_mask=mask).logits
        plain = tiny_model.hf(input_ids=ids, attention_mask=mask).logits
        for r, row in enumerate(rows):
            if row is None:
                assert torch.equal(mixed[r], plain[r])
                continue
            one_hot = [strengths[r] if k == r else 0.0 for k in range(len(rows))]
            with steer(tiny_model, row.vector, one_hot, layers=list(row.layers), positions=row.positions,
                       prompt_lengths=steer_lengths(lengths)):
                ref = tiny_model.hf(input_ids=ids, attention_mask=mask).logits
            assert torch.equal(mixed[r], ref[r]), f"row {r} differs from steer() of that row"
            assert not torch.equal(mixed[r], plain[r])
    assert handle.rows_steered().tolist() == [True, False, True]


def test_ablate_and_clamp_rows_match_steer(tiny_model, vectors):
    ids, mask, lengths = encode_prompts(tiny_model, PROMPTS[:2])
    rows = [SteerSpec(vectors[0], (1,), mode="ablate"), SteerSpec(vectors[1], (2,), mode="clamp")]
    strengths = [1.0, 2.0]
    with torch.inference_mode():
        with steer_rows(tiny_model, rows, strengths, lengths):
            mixed = tiny_model.hf(input_ids=ids, attention_mask=mask).logits
        for r, row in enumerate(rows):
            with steer(tiny_model, row.vector, strengths[r], layers=list(row.layers), mode=row.mode):
                ref = tiny_model.hf(input_ids=ids[r : r + 1], attention_mask=mask[r : r + 1]).logits
            real = int(mask[r].sum())
            torch.testing.assert_close(mixed[r, -real:], ref[0, -real:], atol=1e-4, rtol=1e-4)


def _alone(model, turns, row, strength, n):  # type: ignore[no-untyped-def]
    steps = list(greedy_stream(model, [turns], n, row, None if row is None else [strength]))
    return [s[0] for s in steps if s[0] is not None]


def test_greedy_batch_of_differently_steered_rows_equals_each_alone(tiny_model, vectors):
    rows = [SteerSpec(vectors[0], (1, 2), "generated"), None,
            SteerSpec(vectors[1], (0, 3), "all", gate=_gate(tiny_model, -np.inf))]
    strengths = [3.0, 0.0, -3.0]
    token_ids = [encode_prompts(tiny_model, [p])[0][0].tolist() for p in PROMPTS]
    steps = list(greedy_stream_rows(tiny_model, token_ids, rows, strengths, 8))
    batched = [[s[r] for s in steps if s[r] is not None] for r in range(3)]
    for r, (turns, row) in enumerate(zip(PROMPTS, rows, strict=True)):
        assert batched[r] == _alone(tiny_model, turns, row, strengths[r], 8), f"row {r}"
    plain = [_alone(tiny_model, turns, None, 0.0, 8) for turns in PROMPTS]
    assert batched[0] != plain[0] and batched[2] != plain[2] and batched[1] == plain[1]


def test_each_row_keeps_its_own_gate_decision(tiny_model, vectors):
    ids, mask, lengths = encode_prompts(tiny_model, PROMPTS[:2])
    on, off = _gate(tiny_model, -np.inf), _gate(tiny_model, np.inf)
    rows = [SteerSpec(vectors[0], (1,), gate=off), SteerSpec(vectors[0], (1,), gate=on)]
    with torch.inference_mode():
        with steer_rows(tiny_model, rows, [3.0, 3.0], lengths) as handle:
            gated = tiny_model.hf(input_ids=ids, attention_mask=mask).logits
        plain = tiny_model.hf(input_ids=ids, attention_mask=mask).logits
    assert handle.rows_steered().tolist() == [False, True]
    assert torch.equal(gated[0], plain[0]) and not torch.equal(gated[1], plain[1])


def test_bad_row_is_named(tiny_model, vectors):
    with pytest.raises(ValueError, match="row 1: .*layer 9"):
        with steer_rows(tiny_model, [None, SteerSpec(vectors[0], (9,))], [0.0, 1.0], [5, 5]):
            pass
    late_gate = _gate(tiny_model, 0.0, layer=3)
    with pytest.raises(ValueError, match="row 0: .*gate reads"):
        with steer_rows(tiny_model, [SteerSpec(vectors[0], (1,), gate=late_gate)], [1.0], [5]):
            pass
    with pytest.raises(ValueError, match="2 rows but 1 strengths"):
        with steer_rows(tiny_model, [None, SteerSpec(vectors[0], (1,))], [1.0], [5, 5]):
            pass


def test_last_prompt_gates_read_each_rows_own_last_token_in_a_padded_batch(tiny_model, vectors):
    from steering.methods.gates import chat_gate_scores
    from tests.steering.builders import tie_free_threshold

    prompts = [*PROMPTS, (Turn("user", "two plus two is four; seven times six is"),)]
    rng = np.random.default_rng(5)
    u = rng.normal(size=tiny_model.d_model).astype(np.float32)
    probe = ProbeGate(u / np.linalg.norm(u), bias=0.0, threshold=0.0, layer=1, per="last_prompt")
    scores = chat_gate_scores(tiny_model, prompts, probe)
    gate = ProbeGate(probe.direction_unit, 0.0, tie_free_threshold(scores), layer=1, per="last_prompt")
    ids, mask, lengths = encode_prompts(tiny_model, prompts)
    assert len(set(lengths)) > 1  # the batch is padded
    rows = [SteerSpec(vectors[k % 3], (2,), "generated", gate=gate) for k in range(len(prompts))]
    strengths = [3.0] * len(prompts)
    with torch.inference_mode(), steer_rows(tiny_model, rows, strengths, lengths) as handle:
        tiny_model.hf(input_ids=ids, attention_mask=mask)
    expected = (scores > gate.threshold).tolist()
    assert handle.rows_steered().tolist() == expected and any(expected) and not all(expected)
    token_ids = [encode_prompts(tiny_model, [p])[0][0].tolist() for p in prompts]
    steps = list(greedy_stream_rows(tiny_model, token_ids, rows, strengths, 6))
    for r, (turns, row) in enumerate(zip(prompts, rows, strict=True)):
        assert [s[r] for s in steps if s[r] is not None] == _alone(tiny_model, turns, row, 3.0, 6)
