"""The torch backend of continuous batching: rows that join and leave a running batch decode exactly as alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.tasks.example import Turn
from steering.generation import encode_prompts, greedy_stream
from steering.probe_gate import ProbeGate
from steering.rows import RowSteer
from steering.serve.backend import RowRequest
from steering.serve.batch_cache import BatchCache
from steering.serve.torch_backend import TorchBackend
from steering.spec import SteerSpec
from tests.steering.builders import random_vector, tie_free_threshold

PROMPTS = [(Turn("user", "What is the capital of France?"),),
           (Turn("user", "I think the answer is London, but I'm really not sure. Are you sure?"),),
           (Turn("user", "Please rate the following poem"),),
           (Turn("user", "two plus two is four; seven times six is"),),
           (Turn("system", "Answer with a short phrase."), Turn("user", "My textbook says the answer is Berlin.")),
           (Turn("user", "Choices: (A) Paris (B) Rome. The answer is"),)]
STEPS = 8


@pytest.fixture(scope="module")
def vectors(tiny_model):  # type: ignore[no-untyped-def]
    return [random_vector(tiny_model, layers=(0, 1, 2, 3), seed=s, scale=4.0) for s in (1, 2, 3)]


def _ids(model, turns) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    return tuple(encode_prompts(model, [turns])[0][0].tolist())


def _alone(model, turns, row: RowSteer | None, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    """The request decoded alone through `steer()` (the `workbench steer` path), stop tokens included."""
    spec = None if row is None else SteerSpec(row.vector, row.layers, row.positions, row.mode, gate=row.gate)
    steps = list(greedy_stream(model, [turns], n, spec, None if row is None else [row.strength]))
    return [s[0] for s in steps if s[0] is not None]


def _gates(model, prompts) -> tuple[ProbeGate, ProbeGate, np.ndarray]:  # type: ignore[no-untyped-def]
    """Layer-1 gates (last_prompt, token) whose threshold splits the prompts' last-token scores, and the scores."""
    from steering.gate_training import chat_gate_scores

    rng = np.random.default_rng(5)
    u = rng.normal(size=model.d_model).astype(np.float32)
    probe = ProbeGate(u / np.linalg.norm(u), bias=0.0, threshold=0.0, layer=1, per="last_prompt")
    scores = chat_gate_scores(model, prompts, probe)
    threshold = tie_free_threshold(scores)
    return (ProbeGate(probe.direction_unit, 0.0, threshold, layer=1, per="last_prompt"),
            ProbeGate(probe.direction_unit, 0.0, threshold, layer=1, per="token"), scores > threshold)


def _drive(backend: TorchBackend, requests: list[RowRequest], joins: dict[int, list[int]], n: int) -> dict[int, list]:
    """Admit `requests[i]` for i in joins[step] before that decode step; release a row after its n-th token."""
    got: dict[int, list[int]] = {}
    steered: dict[int, bool | None] = {}
    for step in range(n * 3):
        for token in backend.admit([requests[i] for i in joins.get(step, [])]):
            got[token.key] = [token.token]
        backend.release([k for k, tokens in got.items() if len(tokens) >= n])
        for token in backend.step():
            got[token.key].append(token.token)
            steered[token.key] = token.steered
    assert backend.live == 0 or all(len(t) >= n for t in got.values())
    return {k: [got[k][:n], steered.get(k)] for k in got}


@pytest.mark.parametrize("prefix_cache", [False, True])
def test_rows_joining_and_leaving_a_running_batch_equal_each_alone(tiny_model, vectors, prefix_cache: bool) -> None:  # type: ignore[no-untyped-def]
    gate, token_gate, opens = _gates(tiny_model, PROMPTS)
    assert opens.any() and not opens.all()
    prompts = [*PROMPTS[:3], PROMPTS[int(np.argmax(opens))], PROMPTS[int(np.argmin(opens))], PROMPTS[5]]
    rows = [None, RowSteer(vectors[0], 3.0, (1, 2), "generated"), RowSteer(vectors[1], -2.0, (0,), "all"),
            RowSteer(vectors[2], 2.0, (2,), "prompt", gate=gate), RowSteer(vectors[0], 3.0, (2, 3), "generated",
                                                                            gate=gate),
            RowSteer(vectors[1], 1.0, (1,), "generated", mode="ablate", gate=token_gate)]
    requests = [RowRequest(10 + i, _ids(tiny_model, p), row) for i, (p, row) in enumerate(zip(prompts, rows,
                                                                                             strict=True))]
    backend = TorchBackend(tiny_model, _shared(tiny_model) if prefix_cache else ())
    # staggered: two rows start, one joins at step 2, two at step 3 (one with a longer prompt), one at step 9
    result = _drive(backend, requests, {0: [0, 1], 2: [2], 3: [3, 4], 9: [5]}, STEPS)
    for i, (turns, row) in enumerate(zip(prompts, rows, strict=True)):
        tokens, _ = result[10 + i]
        assert tokens == _alone(tiny_model, turns, row, STEPS)[:STEPS], f"row {i}"
    plain = [_alone(tiny_model, turns, None, STEPS) for turns in prompts]
    assert result[11][0] != plain[1] and result[12][0] != plain[2]  # steering acts in the batch
    assert result[13][0] != plain[3] and result[14][0] == plain[4]  # the gate opens for one prompt, not the other
    assert [result[10 + i][1] for i in range(5)] == [None, True, True, True, False]


def _shared(model) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    from steering.serve.engine import Engine, ServeLimits
    from steering.serve.registry import VectorRegistry

    return Engine(model, VectorRegistry.empty(), ServeLimits(), "tiny").shared_prefix()


def test_prefix_is_reused_only_where_steering_leaves_it_alone(tiny_model, vectors) -> None:  # type: ignore[no-untyped-def]
    prefix = _shared(tiny_model)
    ids = _ids(tiny_model, PROMPTS[0])
    assert len(prefix) >= 2 and ids[: len(prefix)] == prefix
    backend = TorchBackend(tiny_model, prefix)
    rows = [None, RowSteer(vectors[0], 3.0, (1,), "generated"), RowSteer(vectors[0], 3.0, (1,), "all"),
            RowSteer(vectors[0], 3.0, (1,), "prompt")]
    tokens = backend.admit([RowRequest(k, ids, row) for k, row in enumerate(rows)])
    assert [t.cached for t in tokens] == [len(prefix), len(prefix), 0, 0]
    other = _ids(tiny_model, PROMPTS[4])  # its own system turn: another prefix
    assert backend.admit([RowRequest(9, other, None)])[0].cached == 0
    assert [t.token for t in tokens[:2]] == [_alone(tiny_model, PROMPTS[0], r, 1)[0] for r in rows[:2]]


def test_batch_cache_keeps_each_rows_columns_when_rows_join_and_leave() -> None:
    from transformers import DynamicCache

    g = torch.Generator().manual_seed(0)
    keys = [torch.randn(1, 2, w, 4, generator=g) for w in (3, 5, 2)]  # one layer; values = -keys

    def prefill(rows: list[torch.Tensor]) -> DynamicCache:  # right-padded with a marker that must never show
        width = max(k.shape[2] for k in rows)
        padded = torch.cat([torch.cat([k, torch.full((1, 2, width - k.shape[2], 4), 99.0)], 2) for k in rows])
        return DynamicCache(ddp_cache_data=[(padded, -padded)])

    batch = BatchCache()
    batch.join(prefill(keys[:1]), [3])
    batch.join(prefill(keys[1:]), [5, 2])
    assert batch.width == 5 and batch.lengths == [3, 5, 2]
    assert batch.mask.tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 1, 1]]
    assert batch.cache is not None
    layer = batch.cache.layers[0]
    for r, k in enumerate(keys):
        w = k.shape[2]
        assert torch.equal(layer.keys[r, :, 5 - w:], k[0]) and torch.equal(layer.values[r, :, 5 - w:], -k[0])
        assert not layer.keys[r, :, : 5 - w].any()
    mask, positions = batch.step_inputs()
    assert mask.shape == (3, 6) and positions.flatten().tolist() == [3, 5, 2]
    batch.keep([2, 0])  # the longest row leaves: its columns go
    assert batch.width == 3 and batch.lengths == [2, 3] and batch.mask.tolist() == [[0, 1, 1], [1, 1, 1]]
    assert torch.equal(batch.cache.layers[0].keys[1], keys[0][0])
    batch.keep([])
    assert batch.batch == 0 and batch.cache is None
