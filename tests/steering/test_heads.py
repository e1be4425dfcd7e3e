"""Head-level steering: hook_z edits equal their exported residual vectors, ablation parity, train-only ranking."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from interp.analysis.heads import set_heads
from interp.models.hooks import hooks_on
from interp.scoring.reference import score_choices
from interp.sites import Site
from steering.apply.spec import SteerSpec, steer_lengths
from steering.apply.steer_hooks import steer
from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.evaluate import freeze, prompt_tokens, score_strengths
from steering.evaluation.splits import PairSplit, check_disjoint, pairs_hash
from steering.methods.head_steer import HeadEdit, HeadSpec, head_shift_residual, steer_heads
from steering.methods.heads import CONTROL, METHOD, USER, head_edit, head_examples, head_shift_vector, rank_heads

PROMPTS = [
    "What is the capital of France? I think the answer is London.",
    "two plus two is",
    "Please rate the following poem on a scale from 1 to 10.",
]
SPLIT = PairSplit(seed=0, test_fraction=0.3)


def _batch(model, side: str = "left") -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    enc = model.tokenizer(PROMPTS, return_tensors="pt", padding=True, padding_side=side)  # the shared tokenizer unchanged
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _logits(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return model.hf(**batch).logits  # [batch, pos, vocab]


def _hook_count(model) -> int:  # type: ignore[no-untyped-def]
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.hf.modules())


def _edit(model, seed: int = 0) -> HeadEdit:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    heads = [(1, 0), (1, 3), (2, 2)]
    return HeadEdit(model.n_heads, model.d_head, shifts={h: rng.normal(size=model.d_head) for h in heads})


def _residual_vector(model, edit: HeadEdit) -> SteeringVector:  # type: ignore[no-untyped-def]
    return SteeringVector(head_shift_residual(model, edit), method=METHOD, d_model=model.d_model,
                          site_kind="hook_attn_out")


@pytest.fixture(scope="module")
def ranking(tiny_model):  # type: ignore[no-untyped-def]
    return rank_heads(tiny_model, SPLIT, n_pairs=4, seed=0, batch_size=3)


@pytest.mark.parametrize("positions", ["all", "generated"])
@pytest.mark.parametrize("strength", [1.5, [0.0, -2.0, 1.0]])
def test_head_shift_equals_steer_with_exported_residual_vector(tiny_model, positions, strength):
    batch = _batch(tiny_model)
    lengths = (batch["attention_mask"].sum(1) - 2).tolist()
    edit = _edit(tiny_model)
    vector = _residual_vector(tiny_model, edit)
    assert vector.layers == [1, 2]
    with steer_heads(tiny_model, edit, strength, positions=positions, prompt_lengths=lengths):
        heads = _logits(tiny_model, batch)
    with steer(tiny_model, vector, strength, positions=positions, prompt_lengths=lengths):
        resid = _logits(tiny_model, batch)
    assert (heads - resid).abs().max() < 1e-5
    assert (heads - _logits(tiny_model, batch)).abs().max() > 1e-2  # it did steer


def test_head_shift_equals_residual_vector_in_cached_generation(tiny_model):
    batch = _batch(tiny_model)
    lengths = batch["attention_mask"].sum(1).tolist()
    edit = _edit(tiny_model, seed=1)
    vector = 4.0 * _residual_vector(tiny_model, edit)
    settings = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": tiny_model.tokenizer.pad_token_id}
    with torch.no_grad(), steer_heads(tiny_model, edit, 4.0, positions="generated", prompt_lengths=lengths):
        heads = tiny_model.hf.generate(**batch, **settings, output_scores=True, return_dict_in_generate=True)
    with torch.no_grad(), steer(tiny_model, vector, 1.0, positions="generated", prompt_lengths=lengths):
        resid = tiny_model.hf.generate(**batch, **settings, output_scores=True, return_dict_in_generate=True)
    assert torch.equal(heads.sequences, resid.sequences)
    assert max(float((a - b).abs().max()) for a, b in zip(heads.scores, resid.scores, strict=True)) < 1e-5


@pytest.mark.parametrize("positions", ["all", "generated"])
def test_strength_zero_is_exactly_unsteered_and_hooks_are_removed(tiny_model, positions):
    batch = _batch(tiny_model)
    ref = _logits(tiny_model, batch)
    edit = HeadEdit(tiny_model.n_heads, tiny_model.d_head, shifts=_edit(tiny_model).shifts, scales={(0, 1): 0.0})
    before = _hook_count(tiny_model)
    with steer_heads(tiny_model, edit, 0.0, positions=positions, prompt_lengths=4):
        assert _hook_count(tiny_model) == before + len(edit.layers) + 1
        assert torch.equal(_logits(tiny_model, batch), ref)
    assert _hook_count(tiny_model) == before
    with pytest.raises(KeyError, match="boom"), steer_heads(tiny_model, edit, 1.0):
        raise KeyError("boom")
    with pytest.raises(ValueError, match="per-row strength has 2 values"), steer_heads(tiny_model, edit, [1.0, 2.0]):
        _logits(tiny_model, batch)
    assert _hook_count(tiny_model) == before
    assert torch.equal(_logits(tiny_model, batch), ref)


def test_scale_zero_equals_zero_ablation(tiny_model):
    batch = _batch(tiny_model)
    heads = [(1, 2), (2, 0), (2, 3)]
    edit = HeadEdit(tiny_model.n_heads, tiny_model.d_head, scales={h: 0.0 for h in heads})
    with steer_heads(tiny_model, edit, 1.0):
        scaled = _logits(tiny_model, batch)
    by_layer = {1: [2], 2: [0, 3]}

    def zeroer(layer: int):  # type: ignore[no-untyped-def]
        fn = set_heads(by_layer[layer], tiny_model.d_head, torch.zeros(len(by_layer[layer]), tiny_model.d_head))
        return lambda z: torch.stack([fn(row) for row in z])  # [batch, pos, n_heads*d_head]

    with hooks_on(tiny_model, {Site(layer, "attn.hook_z"): zeroer(layer) for layer in by_layer}):
        ablated = _logits(tiny_model, batch)
    assert torch.allclose(scaled, ablated, atol=1e-6)
    assert (scaled - _logits(tiny_model, batch)).abs().max() > 1e-3


def test_edit_validation(tiny_model):
    with pytest.raises(ValueError, match="outside the model"):
        HeadEdit(tiny_model.n_heads, tiny_model.d_head, scales={(0, tiny_model.n_heads): 0.0})
    with pytest.raises(ValueError, match="expected"):
        HeadEdit(tiny_model.n_heads, tiny_model.d_head, shifts={(0, 0): np.ones(3)})
    with pytest.raises(ValueError, match="needs prompt_lengths"), \
            steer_heads(tiny_model, HeadEdit(tiny_model.n_heads, tiny_model.d_head), positions="generated"):
        pass


def test_ranking_reads_only_train_pairs(tiny_model, ranking, held_out):
    assert len(ranking.table) == tiny_model.n_layers * tiny_model.n_heads
    assert list(ranking.table["rank"]) == list(range(1, len(ranking.table) + 1))
    assert ranking.table["attribution"].is_monotonic_decreasing
    check_disjoint(ranking.pair_ids, {ex.pair_id for ex in held_out.examples}, "head ranking vs test set")
    assert not any(SPLIT.is_test(p) for p in ranking.pair_ids)
    assert ranking.meta["train_pairs_hash"] == pairs_hash(ranking.pair_ids)
    assert ranking.meta["split"] == SPLIT.to_dict() and len(ranking.pair_ids) == 4
    assert ranking.shifts.shape == (tiny_model.n_layers, tiny_model.n_heads, tiny_model.d_head)
    assert all(ranking.table.set_index("name").loc[f"L{a}H{b}", "attribution"] > 0 for a, b in ranking.top(50))
    assert {layer for layer, _ in ranking.top(3, layers=[2])} <= {2}


def test_attribution_matches_finite_difference(tiny_model, ranking):
    """The ranking's per-pair score = d margin / d strength at 0 of the head's shift toward the control."""
    examples = head_examples(SPLIT, n_pairs=4, seed=0)
    user = next(ex for ex in examples if ex.condition == USER and ex.pair_id == ranking.pair_ids[0])
    layer, head = ranking.top(1)[0]
    edit = head_edit(tiny_model, ranking, [(layer, head)])
    lengths = steer_lengths(prompt_tokens(tiny_model, [user]))[0]  # both choice rows share the prompt

    def margin(strength: float) -> float:
        with steer_heads(tiny_model, edit, strength, positions="generated", prompt_lengths=lengths):
            table = score_choices(tiny_model, [user]).set_index("choice")["mean_logprob"]
        return float(table[user.correct] - table[user.sycophantic])

    from steering.methods.head_grads import margin_grads

    grad, base = margin_grads(tiny_model, [user], "generated")
    assert base[0] == pytest.approx(margin(0.0), abs=1e-5)
    h = 0.5  # the tiny model's shifts are small: still the linear regime
    numeric = (margin(-h) - margin(h)) / (2 * h)  # toward the control = strength -1
    analytic = float(grad[0, layer, head] @ -ranking.shifts[layer, head])
    assert numeric == pytest.approx(analytic, rel=1e-2, abs=1e-6)


def test_head_shift_vector_is_the_ranked_heads_shift(tiny_model, ranking):
    vector = head_shift_vector(tiny_model, ranking, k=3)
    top = ranking.top(3)
    assert vector.site_kind == "hook_attn_out" and vector.method == METHOD
    assert vector.layers == sorted({layer for layer, _ in top})
    assert vector.meta["heads"] == [f"L{layer}H{head}" for layer, head in top] and vector.meta["k"] == 3
    assert vector.meta["train_pairs_hash"] == ranking.meta["train_pairs_hash"]
    assert (vector.meta["positive"], vector.meta["negative"]) == (USER, CONTROL)
    batch = _batch(tiny_model)
    with steer(tiny_model, vector, -1.0):
        resid = _logits(tiny_model, batch)
    with steer_heads(tiny_model, head_edit(tiny_model, ranking, top), -1.0):
        heads = _logits(tiny_model, batch)
    assert (heads - resid).abs().max() < 1e-5
    ref = _logits(tiny_model, batch)
    with steer(tiny_model, vector, 0.0), steer_heads(tiny_model, head_edit(tiny_model, ranking, top), 0.0):
        assert torch.equal(_logits(tiny_model, batch), ref)


def _folded_logits(folder, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[no-untyped-def]
    from transformers import AutoModelForCausalLM

    folded = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        return folded(**batch).logits


def _real(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits at real tokens `[n_real, vocab]` (pad queries attend to nothing: their value is implementation noise)."""
    return logits[batch["attention_mask"].bool()]


def test_folded_head_edit_equals_steer_heads(tiny_model, tmp_path):
    """Scales (input-dependent: no vector) and shifts fold into o_proj columns and bias; stock transformers loads it."""
    from steering.methods.head_fold import fold_head_edit

    batch = _batch(tiny_model)
    edit = HeadEdit(tiny_model.n_heads, tiny_model.d_head, shifts=_edit(tiny_model).shifts,
                    scales={(0, 1): 0.0, (2, 2): 1.7})
    before = {k: v.clone() for k, v in tiny_model.hf.state_dict().items()}
    folder = fold_head_edit(tiny_model, edit, tmp_path / "heads", strength=0.8)
    assert all(torch.equal(before[k], v) for k, v in tiny_model.hf.state_dict().items())  # the model is untouched
    with steer_heads(tiny_model, edit, 0.8):
        hooked = _logits(tiny_model, batch)
    got = _real(_folded_logits(folder, batch), batch)
    hooked = _real(hooked, batch)
    assert (got - hooked).abs().max() < 1e-4
    assert (got - _real(_logits(tiny_model, batch), batch)).abs().max() > 1e-2


def test_folded_attn_out_vector_equals_steer(tiny_model, ranking, tmp_path):
    from steering.export.info import ExportError
    from steering.methods.head_fold import fold_attn_out_vector

    batch = _batch(tiny_model)
    vector = 50.0 * head_shift_vector(tiny_model, ranking, k=4)  # the tiny model's shifts are small
    folder = fold_attn_out_vector(tiny_model, vector, tmp_path / "vec", strength=-1.0)
    with steer(tiny_model, vector, -1.0):
        hooked = _logits(tiny_model, batch)
    got = _real(_folded_logits(folder, batch), batch)
    hooked = _real(hooked, batch)
    assert (got - hooked).abs().max() < 1e-4
    assert (got - _real(_logits(tiny_model, batch), batch)).abs().max() > 1e-3
    with pytest.raises(ExportError, match="positions"):
        fold_attn_out_vector(tiny_model, dataclasses.replace(vector, positions="generated"), tmp_path / "g", -1.0)


def test_head_spec_scores_like_the_exported_vector_in_the_sweep_scorer(tiny_model, held_out):
    """score_strengths (cached scorer, frozen prefix for "generated") takes a HeadSpec like a SteerSpec."""
    edit = _edit(tiny_model, seed=2)
    vector = _residual_vector(tiny_model, edit)
    tokens = prompt_tokens(tiny_model, held_out.examples)
    frozen = freeze(tiny_model, held_out, tokens, 8)
    strengths = [-3.0, 2.0]
    heads = score_strengths(tiny_model, held_out, HeadSpec(edit, "generated"), strengths, 8, tokens, frozen=frozen)
    resid = score_strengths(tiny_model, held_out, SteerSpec(vector, (1, 2), "generated"), strengths, 8, tokens,
                            frozen=frozen)
    for a, b in zip(heads, resid, strict=True):
        assert np.allclose(a.rows["margin"], b.rows["margin"], atol=1e-5, equal_nan=True)  # NaN: rating tasks
        assert torch.allclose(a.next_logprobs, b.next_logprobs, atol=1e-5)
    base = score_strengths(tiny_model, held_out, None, [0.0], 8, tokens, frozen=frozen)[0]
    assert not np.allclose(heads[0].rows["margin"], base.rows["margin"], atol=1e-4, equal_nan=True)


def test_exports_of_a_head_shift_vector(tiny_model, ranking, tmp_path):
    """Native keeps site_kind hook_attn_out (exact); gguf and the down_proj fold refuse it (llama.cpp adds after
    the MLP: only approximate); `steering.methods.head_fold.fold_attn_out_vector` is its exact fold."""
    from steering.export import ExportError, export_vector
    from steering.export.native import load_native

    vector = head_shift_vector(tiny_model, ranking, k=2)
    loaded, info = load_native(export_vector("safetensors", vector, tmp_path / "v.safetensors", strength=-2.0))
    assert loaded == vector and loaded.site_kind == "hook_attn_out" and info.strength == -2.0
    for fmt, out in (("gguf", tmp_path / "v.gguf"), ("hf-folded", tmp_path / "folded")):
        with pytest.raises(ExportError, match="hook_attn_out"):
            export_vector(fmt, vector, out, strength=-2.0, model=tiny_model)


def test_ranking_round_trip(ranking, tmp_path):
    from steering.methods.heads import HeadRanking

    back = HeadRanking.load(ranking.save(tmp_path / "ranking.safetensors"))
    assert np.array_equal(back.shifts, ranking.shifts) and back.pair_ids == ranking.pair_ids
    assert back.meta == ranking.meta and back.resid_norms == ranking.resid_norms
    assert back.table.equals(ranking.table) and back.top(5) == ranking.top(5)
