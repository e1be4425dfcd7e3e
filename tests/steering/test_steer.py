"""steering.steer: hooks cleaned up, exact modes, positions under KV cache, per-row sweeps, gates, parity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from interp.models.hooks import hooks_on
from interp.sites import Site
from interp.tasks.example import Turn
from steering.apply.interventions import ForwardCall, last_prompt_column, position_mask
from steering.apply.parity import steered_logits_nnsight, steered_logits_tl
from steering.apply.spec import SteerSpec
from steering.apply.steer_hooks import steer
from steering.artifacts.probe_gate import ProbeGate
from steering.artifacts.steering_vector import SteeringVector, VectorMismatchError
from tests.steering.builders import tie_free_threshold

PROMPTS = [
    "What is the capital of France? I think the answer is London.",
    "two plus two is",
    "Please rate the following poem on a scale from 1 to 10.",
]


def _vector(d: int, layers: range | list[int], seed: int = 0, site_kind: str = "hook_resid_post") -> SteeringVector:
    rng = np.random.default_rng(seed)
    return SteeringVector({layer: rng.normal(size=d).astype(np.float32) for layer in layers}, method="random",
                          d_model=d, site_kind=site_kind)


def test_position_mask_reads_left_padding_and_the_kv_cache_offset():
    """The one position rule steer(), per-row steering and head shifts share, on a left-padded batch of two."""
    cpu = torch.device("cpu")
    prefill = ForwardCall(2, 4, 0, torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]), cpu)  # row 0: one pad, real -1..2
    step = ForwardCall(2, 1, 4, torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]]), cpu)  # one cached step
    lengths = torch.tensor([2, 3])
    assert position_mask("generated", lengths, prefill).tolist() == [[False, False, False, True]] * 2
    assert position_mask("prompt", lengths, prefill).tolist() == [[True, True, True, False]] * 2
    assert position_mask("generated", lengths, step).tolist() == [[True], [True]]
    assert position_mask("prompt", lengths, step).tolist() == [[False], [False]]
    assert position_mask(["prompt", "all"], lengths, prefill).tolist() == [[True, True, True, False], [True] * 4]
    assert position_mask(["all", "generated"], lengths, step).tolist() == [[True], [True]]
    assert position_mask(["all", "all"], lengths, prefill) is None and position_mask("all", None, step) is None
    with pytest.raises(ValueError, match="prompt_lengths has 3 values but the batch has 2 rows"):
        position_mask("generated", torch.tensor([1, 2, 3]), prefill)
    # the last prompt token (a last_prompt gate's): column 3 of the prefill in both rows, not in the cached step
    lead = torch.tensor([1, 0])
    column, known = last_prompt_column(prefill, lead, torch.tensor([3, 4]))
    assert column.tolist() == [3, 3] and known.tolist() == [True, True]
    column, known = last_prompt_column(step, lead, torch.tensor([3, 4]))
    assert column.tolist() == [-1, -1] and known.tolist() == [False, False]


def _batch(model, prompts: list[str], side: str = "right") -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    enc = model.tokenizer(prompts, return_tensors="pt", padding=True, padding_side=side)  # the shared tokenizer unchanged
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _logits(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return model.hf(**batch).logits  # [batch, pos, vocab]


def _hook_count(model) -> int:  # type: ignore[no-untyped-def]
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.hf.modules())


@pytest.fixture(scope="module")
def vec(tiny_model) -> SteeringVector:  # type: ignore[no-untyped-def]
    return _vector(tiny_model.d_model, range(tiny_model.n_layers))


def test_hooks_removed_after_context_and_after_exception(tiny_model, vec):
    batch = _batch(tiny_model, PROMPTS)
    ref = _logits(tiny_model, batch)
    before = _hook_count(tiny_model)
    with steer(tiny_model, vec, 4.0, layers=[1, 2]):
        assert _hook_count(tiny_model) == before + 3  # two layers + the stack's pre-hook
        assert not torch.allclose(_logits(tiny_model, batch), ref)
    assert _hook_count(tiny_model) == before
    with pytest.raises(KeyError, match="boom"):
        with steer(tiny_model, vec, 4.0, positions="generated", prompt_lengths=3):
            _logits(tiny_model, batch)
            raise KeyError("boom")
    assert _hook_count(tiny_model) == before
    with pytest.raises(ValueError, match="per-row strength has 2 values but the batch has 3 rows"):
        with steer(tiny_model, vec, [1.0, 2.0], layers=0):
            _logits(tiny_model, batch)
    assert _hook_count(tiny_model) == before
    assert torch.equal(_logits(tiny_model, batch), ref)


@pytest.mark.parametrize("mode", ["add", "ablate"])
@pytest.mark.parametrize("positions", ["all", "generated"])
def test_strength_zero_is_exactly_unsteered(tiny_model, vec, mode, positions):
    batch = _batch(tiny_model, PROMPTS)
    ref = _logits(tiny_model, batch)
    with steer(tiny_model, vec, 0.0, mode=mode, positions=positions, prompt_lengths=4):
        assert torch.equal(_logits(tiny_model, batch), ref)


def test_ablate_zeroes_and_clamp_sets_the_projection(tiny_model, vec):
    batch = _batch(tiny_model, PROMPTS)
    site = Site(2, "hook_resid_post")
    u = torch.as_tensor(vec.directions[2] / np.linalg.norm(vec.directions[2]))
    seen: dict[str, torch.Tensor] = {}

    def grab(name: str):  # type: ignore[no-untyped-def]
        def fn(h: torch.Tensor) -> None:
            seen[name] = h.detach().clone()

        return fn

    with torch.no_grad():
        with hooks_on(tiny_model, {site: grab("before")}):  # registered first: sees the unsteered value
            with steer(tiny_model, vec, 1.0, layers=2, mode="ablate"):
                with hooks_on(tiny_model, {site: grab("after"), Site(3, "hook_resid_pre"): grab("next")}):
                    tiny_model.hf(**batch)
        assert (seen["before"] @ u).abs().max() > 0.1
        assert (seen["after"] @ u).abs().max() < 1e-5
        assert torch.equal(seen["after"], seen["next"])
        expected = seen["before"] - (seen["before"] @ u).unsqueeze(-1) * u
        torch.testing.assert_close(seen["after"], expected, atol=1e-5, rtol=0)
        for kwargs, target in (({"value": None}, 3.0 * float(np.linalg.norm(vec.directions[2]))), ({"value": -7.5}, -7.5)):
            with steer(tiny_model, vec, 3.0, layers=2, mode="clamp", value=kwargs["value"]):
                with hooks_on(tiny_model, {site: grab("clamped")}):
                    tiny_model.hf(**batch)
            torch.testing.assert_close(seen["clamped"] @ u, torch.full_like(seen["clamped"][..., 0], target),
                                       atol=1e-4, rtol=0)


@pytest.mark.parametrize("mode", ["add", "ablate", "clamp"])
def test_per_row_strengths_equal_separate_runs(tiny_model, vec, mode):
    strengths = [0.0, 1.5, -3.0, 6.0]
    one = _batch(tiny_model, PROMPTS[:1])
    rows = {k: v.expand(len(strengths), -1) for k, v in one.items()}
    with steer(tiny_model, vec, strengths, layers=[1, 3], mode=mode):
        batched = _logits(tiny_model, rows)
    for i, s in enumerate(strengths):
        with steer(tiny_model, vec, s, layers=[1, 3], mode=mode):
            torch.testing.assert_close(batched[i], _logits(tiny_model, one)[0], atol=1e-5, rtol=0)
    with steer(tiny_model, vec, torch.tensor(strengths), layers=[1, 3], mode=mode):
        assert torch.equal(_logits(tiny_model, rows), batched)


def test_resid_pre_of_next_layer_equals_resid_post(tiny_model, vec):
    batch = _batch(tiny_model, PROMPTS)
    pre = _vector(tiny_model.d_model, [2], site_kind="hook_resid_pre")
    post = dataclasses.replace(pre, directions={1: pre.directions[2]}, site_kind="hook_resid_post")
    with steer(tiny_model, pre, 3.0, positions="prompt", prompt_lengths=[5, 2, 7]):
        a = _logits(tiny_model, batch)
    with steer(tiny_model, post, 3.0, positions="prompt", prompt_lengths=[5, 2, 7]):
        b = _logits(tiny_model, batch)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("side", ["right", "left"])
def test_positions_split_prompt_and_generated_tokens_in_a_full_forward(tiny_model, vec, side):
    batch = _batch(tiny_model, PROMPTS, side)
    real = batch["attention_mask"].bool()
    ref = _logits(tiny_model, batch)
    lengths = torch.tensor([6, 2, 4])
    lead = (batch["attention_mask"].cumsum(1) == 0).sum(1)
    t = torch.arange(batch["input_ids"].shape[1]).unsqueeze(0) - lead.unsqueeze(1)  # real token index
    in_prompt = (t < lengths.unsqueeze(1)) & real
    after = (t >= lengths.unsqueeze(1)) & real
    with steer(tiny_model, vec, 6.0, layers=1, positions="generated", prompt_lengths=lengths) as s:
        gen = _logits(tiny_model, batch)
    assert torch.equal(gen[in_prompt], ref[in_prompt])
    assert ((gen - ref).abs().amax(-1) > 1e-3)[after].all()
    assert torch.equal(s.steered, (t >= lengths.unsqueeze(1)))
    with steer(tiny_model, vec, 6.0, layers=1, positions="prompt", prompt_lengths=lengths):
        prompt = _logits(tiny_model, batch)
    assert ((prompt - ref).abs().amax(-1) > 1e-3)[in_prompt].all()


def _generate(model, batch, use_cache: bool, n: int = 6):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return model.hf.generate(**batch, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=use_cache,
                                 output_logits=True, return_dict_in_generate=True,
                                 pad_token_id=model.tokenizer.pad_token_id)


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("positions", ["generated", "prompt"])
def test_positions_during_generate_match_a_full_forward(tiny_model, vec, use_cache, positions):
    """Each step's logits during (cached) generation equal one steered forward over the final sequence."""
    batch = _batch(tiny_model, PROMPTS, "left")
    lengths = batch["attention_mask"].sum(1)
    plain = _generate(tiny_model, batch, use_cache)
    with steer(tiny_model, vec, 8.0, layers=[1, 2], positions=positions, prompt_lengths=lengths) as s:
        out = _generate(tiny_model, batch, use_cache)
    seq = out.sequences
    width = batch["input_ids"].shape[1]
    mask = torch.cat([batch["attention_mask"], torch.ones(len(seq), seq.shape[1] - width, dtype=torch.long)], 1)
    with steer(tiny_model, vec, 8.0, layers=[1, 2], positions=positions, prompt_lengths=lengths):
        full = _logits(tiny_model, {"input_ids": seq, "attention_mask": mask})
    for step, logits in enumerate(out.logits):
        torch.testing.assert_close(logits, full[:, width - 1 + step], atol=1e-4, rtol=0)
    if positions == "generated":
        assert torch.equal(out.logits[0], plain.logits[0])  # the first new token comes from the prompt only
        assert not torch.equal(out.sequences, plain.sequences)
        expected = torch.zeros(len(seq), seq.shape[1] - 1, dtype=torch.bool)
        expected[:, width:] = True
        if use_cache:
            assert torch.equal(s.steered, expected)
    else:
        assert not torch.allclose(out.logits[0], plain.logits[0])


def test_validation_errors_are_clear(tiny_model, vec):
    d = tiny_model.d_model
    with pytest.raises(VectorMismatchError, match="vector has d_model 32, the model has 64"):
        with steer(tiny_model, _vector(32, [1]), 1.0):
            pass
    with pytest.raises(ValueError, match="NaN or inf"):
        SteeringVector({1: np.full(d, np.nan, dtype=np.float32)}, method="x", d_model=d)
    smuggled = _vector(d, [1])
    smuggled.directions[1][0] = np.nan  # bypassing the constructor's check
    with pytest.raises(ValueError, match="layer 1: vector holds NaN or inf"):
        with steer(tiny_model, smuggled, 1.0):
            pass
    cases = [
        ({"mode": "swap"}, "unknown steering mode 'swap': choose from add, ablate, clamp"),
        ({"positions": "middle"}, "unknown positions 'middle': choose from all, prompt, generated"),
        ({"layers": 9}, "layer 9 is outside the model's layers 0..3"),
        ({"positions": "generated"}, "positions='generated' needs prompt_lengths"),
        ({"mode": "add", "value": 1.0}, "value= is for mode 'clamp' only"),
        ({"strength": float("nan")}, "strength must be finite"),
    ]
    for kwargs, message in cases:
        strength = kwargs.pop("strength", 1.0)
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            with steer(tiny_model, vec, strength, **kwargs):
                pass
    with pytest.raises(ValueError, match=r"the vector has no layer 2 \(it has \[1\]\)"):
        with steer(tiny_model, _vector(d, [1]), 1.0, layers=2):
            pass
    hashed = dataclasses.replace(vec, model_hash="f" * 64)
    with pytest.raises(VectorMismatchError, match="pass force=True"):
        with steer(tiny_model, hashed, 1.0):
            pass
    with steer(tiny_model, hashed, 1.0, force=True):
        pass
    gate = ProbeGate(np.eye(d, dtype=np.float32)[0], 0.0, 0.0, layer=3)
    with pytest.raises(ValueError, match="gate reads blocks.3.hook_resid_post, after the first steered site"):
        with steer(tiny_model, vec, 1.0, layers=[2, 3], gate=gate):
            pass
    with pytest.raises(ValueError, match="expected a unit vector"):
        ProbeGate(np.ones(d, dtype=np.float32), 0.0, 0.0, layer=1)


def _scores_at(model, batch, gate: ProbeGate) -> torch.Tensor:  # type: ignore[no-untyped-def]
    out: dict[str, torch.Tensor] = {}

    def read(h: torch.Tensor) -> None:
        out["score"] = gate.score(h)

    with torch.no_grad(), hooks_on(model, {Site(gate.layer, gate.site): read}):
        model.hf(**batch)
    return out["score"]  # [batch, pos]


def test_gate_extremes_equal_always_on_and_unsteered(tiny_model, vec):
    batch = _batch(tiny_model, PROMPTS)
    ref = _logits(tiny_model, batch)
    with steer(tiny_model, vec, 5.0, layers=[1, 2]):
        always = _logits(tiny_model, batch)
    u = vec.directions[0] / np.linalg.norm(vec.directions[0])
    for per in ("token", "last_prompt"):
        on = ProbeGate(u, bias=0.0, threshold=float("-inf"), layer=1, per=per)
        off = dataclasses.replace(on, threshold=float("inf"))
        with steer(tiny_model, vec, 5.0, layers=[1, 2], gate=on, prompt_lengths=4):
            torch.testing.assert_close(_logits(tiny_model, batch), always, atol=1e-6, rtol=0)
        with steer(tiny_model, vec, 5.0, layers=[1, 2], gate=off, prompt_lengths=4) as s:
            assert torch.equal(_logits(tiny_model, batch), ref)
        assert not s.rows_steered().any()


def test_gate_steers_only_rows_and_tokens_above_threshold(tiny_model, vec):
    batch = _batch(tiny_model, PROMPTS, "left")
    lengths = batch["attention_mask"].sum(1)
    ref = _logits(tiny_model, batch)
    with steer(tiny_model, vec, 5.0, layers=[2]):
        always = _logits(tiny_model, batch)
    probe = ProbeGate.from_probe(np.random.default_rng(3).normal(size=tiny_model.d_model), 0.1, 0.0, layer=1,
                                 per="last_prompt")
    last = _scores_at(tiny_model, batch, probe)[:, -1]  # left padding: the last column is every row's last token
    top = last.sort().values
    threshold = float(top[-2] + top[-1]) / 2  # far from every score: only the top row passes
    gate = dataclasses.replace(probe, threshold=threshold)
    chosen = last > threshold
    assert 0 < int(chosen.sum()) < len(PROMPTS)
    with steer(tiny_model, vec, 5.0, layers=[2], gate=gate, prompt_lengths=lengths) as s:
        got = _logits(tiny_model, batch)
    assert torch.equal(s.rows_steered(), chosen)
    real = batch["attention_mask"].bool()
    for row in range(len(PROMPTS)):
        expected = always if chosen[row] else ref
        torch.testing.assert_close(got[row][real[row]], expected[row][real[row]], atol=1e-6, rtol=0)
    torch.testing.assert_close(s.gate_scores, _scores_at(tiny_model, batch, gate), atol=1e-6, rtol=0)

    token_gate = dataclasses.replace(gate, per="token", layer=2)  # same site as the steering: read first
    scores = _scores_at(tiny_model, batch, token_gate)
    token_gate = dataclasses.replace(token_gate, threshold=tie_free_threshold(scores[real].numpy()))
    assert (scores[real] - token_gate.threshold).abs().min() > 5e-5  # no token within float noise of it
    with steer(tiny_model, vec, 5.0, layers=[2], gate=token_gate) as s:
        _logits(tiny_model, batch)
    assert torch.equal(s.steered, scores > token_gate.threshold)
    assert torch.equal(s.gate_on, s.steered)

    with steer(tiny_model, vec, 5.0, layers=[2], gate=gate, positions="generated", prompt_lengths=lengths) as s:
        _generate(tiny_model, batch, use_cache=True, n=3)
    width = batch["input_ids"].shape[1]
    assert not s.steered[:, :width].any()
    assert torch.equal(s.steered[:, width:], chosen.unsqueeze(1).expand(-1, 2))


@pytest.fixture(scope="module")
def bridge(tiny_model):  # type: ignore[no-untyped-def]
    from interp.capture.backends.tl_backend import boot_bridge

    return boot_bridge(tiny_model)


@pytest.mark.parametrize(("mode", "kind"), [("add", "hook_resid_post"), ("ablate", "hook_resid_post"),
                                           ("clamp", "hook_resid_post"), ("add", "hook_resid_pre"),
                                           ("ablate", "hook_attn_out")])
def test_three_backends_give_the_same_logits(tiny_model, bridge, mode, kind):
    vec = _vector(tiny_model.d_model, range(tiny_model.n_layers), seed=1, site_kind=kind)
    batch = _batch(tiny_model, PROMPTS, "left")
    real = batch["attention_mask"].bool()  # pad positions are not compared: TL treats fully masked rows differently
    for positions in ("all", "generated"):
        with steer(tiny_model, vec, 3.0, layers=[1, 3], positions=positions, mode=mode, prompt_lengths=[5, 2, 3]):
            hooks = _logits(tiny_model, batch)
        spec = SteerSpec(vec, (1, 3), positions, mode)
        nn = steered_logits_nnsight(tiny_model, spec, 3.0, batch["input_ids"], batch["attention_mask"], [5, 2, 3])
        tl = steered_logits_tl(tiny_model, bridge, spec, 3.0, batch["input_ids"], batch["attention_mask"], [5, 2, 3])
        assert (hooks - _logits(tiny_model, batch)).abs()[real].max() > 1e-2
        assert (nn - hooks).abs()[real].max() < 1e-4, positions
        assert (tl - hooks).abs()[real].max() < 1e-4, positions


def test_twins_refuse_a_gate_and_clamp_value_matches_steer(tiny_model, bridge):
    vec = _vector(tiny_model.d_model, range(tiny_model.n_layers), seed=1)
    batch = _batch(tiny_model, PROMPTS, "left")
    gate = ProbeGate(np.eye(tiny_model.d_model, dtype=np.float32)[0], bias=0.0, threshold=0.0, layer=0)
    with pytest.raises(ValueError, match="do not apply gates"):
        steered_logits_nnsight(tiny_model, SteerSpec(vec, (1,), gate=gate), 1.0, batch["input_ids"])
    spec = SteerSpec(vec, (2,), mode="clamp", value=2.5)
    with steer(tiny_model, vec, 1.0, layers=2, mode="clamp", value=2.5):
        hooks = _logits(tiny_model, batch)
    tl = steered_logits_tl(tiny_model, bridge, spec, 1.0, batch["input_ids"], batch["attention_mask"])
    real = batch["attention_mask"].bool()
    assert (hooks - _logits(tiny_model, batch)).abs()[real].max() > 1e-2
    assert (tl - hooks).abs()[real].max() < 1e-4


@pytest.mark.embedded
def test_large_random_vector_changes_next_token_distribution(embedded_model):
    model = embedded_model
    rng = np.random.default_rng(0)
    direction = rng.normal(size=model.d_model).astype(np.float32)
    vector = SteeringVector({10: direction / np.linalg.norm(direction)}, method="random", d_model=model.d_model)
    text = model.render([Turn("user", "What is the capital of France?")])
    batch = {k: v for k, v in model.tokenizer([text], return_tensors="pt").items() if k in ("input_ids", "attention_mask")}
    ref = _logits(model, batch)[0, -1]
    with steer(model, vector, 0.0):
        assert torch.equal(_logits(model, batch)[0, -1], ref)
    with steer(model, vector, 100.0):  # the residual norm at layer 10 is about 150
        steered = _logits(model, batch)[0, -1]
    kl = torch.sum(ref.log_softmax(-1).exp() * (ref.log_softmax(-1) - steered.log_softmax(-1)))
    assert kl > 1.0, f"KL {kl:.3f}"
