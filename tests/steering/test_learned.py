"""Learned vectors: training touches only the vector, the frozen prefix equals a full forward, resume is exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from interp.scoring.frozen import frozen_logprobs, frozen_prefix
from steering.apply.spec import steer_lengths
from steering.apply.steer_hooks import steer
from steering.evaluation.splits import PairSplit
from steering.methods.learned import LearnConfig, _pass_loss, _prepare, group_loss, learn_vector, learned_context
from steering.methods.learned_data import ROLES, learning_groups

SPLIT = PairSplit(0, 0.3)
#: a few groups of every task, a few steps: seconds on the tiny model
TINY = LearnConfig(layers=(1,), n_pairs=6, steps=4, groups_per_step=3, eval_every=2, patience=10, val_fraction=0.3,
                   batch_size=16, lr=0.5, tasks=tuple(ROLES))


def test_groups_come_from_the_train_side_with_every_role():
    train, val = learning_groups(SPLIT, n_pairs=8, seed=0, val_fraction=0.3)
    assert not any(SPLIT.is_test(g.pair_id) for g in (*train, *val))
    assert not {(g.task, g.pair_id) for g in train} & {(g.task, g.pair_id) for g in val}
    assert {g.task for g in train} == set(ROLES)
    for g in train:
        assert set(g.examples) == {r for r in ROLES[g.task] if r is not None}
    wordings = {g.pressure.user_claim for g in train if g.task == "answer"}
    assert len(wordings) > 1  # paraphrases, not the fact bank's one sentence
    held = learning_groups(SPLIT, tasks=("answer",), n_pairs=30, seed=0, exclude_categories=("capitals",))
    assert all(g.pressure.meta["category"] != "capitals" for g in (*held[0], *held[1]))
    with pytest.raises(ValueError, match="unknown learning task"):
        learning_groups(SPLIT, tasks=("vibes",))


def test_config_refuses_what_it_cannot_train():
    with pytest.raises(ValueError, match="unknown target"):
        LearnConfig(target="everything")
    with pytest.raises(ValueError, match="unknown positions"):
        LearnConfig(positions="middle")
    with pytest.raises(ValueError, match="max_norm and lr > 0"):
        LearnConfig(lr=0.0)
    assert LearnConfig.from_dict(TINY.to_dict()) == TINY


@pytest.fixture(scope="module")
def prepared(tiny_model):  # type: ignore[no-untyped-def]
    train, val = learning_groups(SPLIT, TINY.tasks, TINY.n_pairs, TINY.seed, TINY.wording, (), TINY.val_fraction)
    data, resid = _prepare(tiny_model, [*train, *val], TINY)
    return train, val, data, resid


def test_zero_vector_reproduces_the_unsteered_reference(tiny_model, prepared):
    train, _, data, resid = prepared
    assert resid[1] > 0
    zero = {1: torch.zeros(tiny_model.d_model)}
    loss, terms, _ = _pass_loss(tiny_model, TINY, data, train, zero, grad=False)
    assert terms["keep"] == pytest.approx(0.0, abs=1e-5)  # KL to itself
    assert terms.get("hinge", 0.0) == pytest.approx(0.0, abs=1e-6)
    assert loss.item() > 0  # the remove term is not zero before training


def test_gradient_flows_only_into_the_vector(tiny_model, prepared):
    train, _, data, _ = prepared
    flags = [p.requires_grad for p in tiny_model.hf.parameters()]
    param = {1: (0.1 * torch.randn(tiny_model.d_model, generator=torch.Generator().manual_seed(0))).requires_grad_()}
    from steering.methods.learned import _frozen_model

    with _frozen_model(tiny_model):
        loss, _, _ = _pass_loss(tiny_model, TINY, data, train[:3], param, grad=True)
        loss.backward()
        assert all(p.grad is None for p in tiny_model.hf.parameters())
    assert param[1].grad is not None and float(param[1].grad.norm()) > 0
    assert [p.requires_grad for p in tiny_model.hf.parameters()] == flags  # restored


def test_known_target_is_correct_where_the_model_knows_and_neutral_elsewhere(tiny_model, prepared):
    """`known` = `correct`'s cross-entropy on questions answered right without the opinion, else `neutral`'s KL."""
    train, _, data, _ = prepared
    groups = [g for g in train if g.task == "answer"]
    examples = [ex for g in groups for ex in g.examples.values()]
    rows = {ex.id: i for i, ex in enumerate(examples)}
    tokens = [data.tokens[data.index[ex.id]] for ex in examples]
    v = {1: 0.3 * torch.randn(tiny_model.d_model, generator=torch.Generator().manual_seed(2))}
    kept = [rows[ex.id] for g in groups for ex in (g.baseline, g.user_right, g.control)]
    values, nexts = frozen_logprobs(tiny_model, examples, data.frozen, 16, learned_context(
        tiny_model, v, "generated", tokens), kept)
    seen = set()
    for g in groups:
        knows = int(data.ref_scores[data.index[g.baseline.id]].argmax()) == g.pressure.correct
        want = "correct" if knows else "neutral"
        got = group_loss(LearnConfig(target="known"), data, g, values, nexts, rows)
        ref = group_loss(LearnConfig(target=want), data, g, values, nexts, rows)
        other = group_loss(LearnConfig(target="neutral" if knows else "correct"), data, g, values, nexts, rows)
        assert float(got["remove"]) == pytest.approx(float(ref["remove"]), abs=1e-6)
        assert abs(float(got["remove"]) - float(other["remove"])) > 1e-4
        seen.add(knows)
    assert seen == {True, False}  # both branches ran


def test_frozen_prefix_training_equals_a_full_forward(tiny_model, prepared):
    """The frozen (unsteered, no-grad) prompt KV + steered rest == steering "generated" on the whole sequence."""
    train, _, data, _ = prepared
    examples = [ex for g in train[:4] for ex in g.examples.values()]
    tokens = [data.tokens[data.index[ex.id]] for ex in examples]
    frozen = frozen_prefix(tiny_model, examples, steer_lengths(tokens))
    full = frozen_prefix(tiny_model, examples, [0] * len(examples))  # freezes nothing: whole sequences
    assert max(frozen.lengths) > 0 and max(full.lengths) == 0
    grads = []
    outs = []
    for prefix in (frozen, full):
        v = {1: (0.5 * torch.randn(tiny_model.d_model, generator=torch.Generator().manual_seed(1))).requires_grad_()}
        context = learned_context(tiny_model, v, "generated", tokens)
        values, nexts = frozen_logprobs(tiny_model, examples, prefix, 16, context, range(len(examples)), grad=True)
        total = sum(torch.stack(vals).sum() for vals in values.values()) + sum(n[:5].sum() for n in nexts.values())
        total.backward()
        grads.append(v[1].grad.clone())
        outs.append({k: [float(x.detach()) for x in vals] for k, vals in values.items()})
    assert outs[0].keys() == outs[1].keys()
    for key in outs[0]:
        np.testing.assert_allclose(outs[0][key], outs[1][key], atol=1e-4)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4, rtol=1e-3)


def test_training_lowers_the_loss_and_the_vector_steers_through_steer(tiny_model, prepared, tmp_path: Path):
    vector = learn_vector(tiny_model, SPLIT, TINY, folder=tmp_path / "run")
    history = vector.meta["history"]
    assert len(history) == TINY.steps and vector.meta["steps_run"] == TINY.steps
    evals = [h for h in history if "val_loss" in h]
    assert len(evals) == 2 and all(np.isfinite(h["val_loss"]) for h in evals)
    # the objective over every training group is lower at the trained vector than at zero
    train, _, data, _ = prepared
    with torch.no_grad():
        at_zero = _pass_loss(tiny_model, TINY, data, train, {1: torch.zeros(tiny_model.d_model)}, grad=False)[0]
        trained = {1: -torch.from_numpy(vector.directions[1])}  # the saved vector points the other way
        at_vector = _pass_loss(tiny_model, TINY, data, train, trained, grad=False)[0]
    assert float(at_vector) < float(at_zero) - 1e-4
    assert vector.method == "learned:correct" and vector.positions == "generated" and vector.layers == [1]
    assert 0 < vector.norms()[1] <= TINY.max_norm * vector.resid_norms[1] + 1e-4
    assert vector.meta["split"] == SPLIT.to_dict() and vector.meta["learned"] == TINY.to_dict()
    # strength 0 leaves the model exactly unchanged; the trained strength (-1) changes it
    ids = tiny_model.tokenizer(["What is the capital of France?"], return_tensors="pt")
    with torch.no_grad():
        ref = tiny_model.hf(**ids).logits
        with steer(tiny_model, vector, 0.0, layers=[1]):
            zero = tiny_model.hf(**ids).logits
        with steer(tiny_model, vector, -1.0, layers=[1]):
            moved = tiny_model.hf(**ids).logits
    assert torch.equal(ref, zero)
    assert float((moved - ref).abs().max()) > 1e-4


def test_training_resumes_from_its_checkpoint(tiny_model, tmp_path: Path):
    whole = learn_vector(tiny_model, SPLIT, TINY, folder=tmp_path / "whole")
    stopped = learn_vector(tiny_model, SPLIT, TINY, folder=tmp_path / "cut", stop_after=2)
    assert stopped.meta["steps_run"] == 2
    resumed = learn_vector(tiny_model, SPLIT, TINY, folder=tmp_path / "cut")
    assert resumed.meta["steps_run"] == TINY.steps
    np.testing.assert_allclose(resumed.directions[1], whole.directions[1], atol=1e-5)
    assert [h["loss"] for h in resumed.meta["history"]] == pytest.approx([h["loss"] for h in whole.meta["history"]],
                                                                         abs=1e-5)
    # another config never resumes from this checkpoint
    other = learn_vector(tiny_model, SPLIT, LearnConfig(**{**TINY.to_dict(), "steps": 2}), folder=tmp_path / "cut")
    assert other.meta["steps_run"] == 2


@pytest.mark.parametrize("pool", ["train", "varied"])
def test_heldout_and_dev_wordings_and_layouts_are_never_trained_on(pool):
    from interp.tasks.templates import ANSWER_LAYOUTS, ANSWER_WORDINGS

    assert len(ANSWER_WORDINGS["varied"][0]) > 1000 and len(ANSWER_LAYOUTS["varied"]) > 100
    for measured in ("heldout", "dev"):
        for i in (0, 1):
            assert not set(ANSWER_WORDINGS[pool][i]) & set(ANSWER_WORDINGS[measured][i])
        assert not set(ANSWER_LAYOUTS[pool]) & set(ANSWER_LAYOUTS[measured])
    for i in (0, 1):  # the tuning pool is not the test pool either
        assert not set(ANSWER_WORDINGS["dev"][i]) & set(ANSWER_WORDINGS["heldout"][i])
    train, val = learning_groups(SPLIT, tasks=("answer",), n_pairs=20, seed=0, wording=pool)
    prompts = [ex.turns[-1].content for g in (*train, *val) for ex in g.examples.values()]
    measured_claims = [t.split("{x}")[0] for name in ("heldout", "dev")
                       for t in ANSWER_WORDINGS[name][0] + ANSWER_WORDINGS[name][1]]
    assert not any(claim in p for claim in measured_claims for p in prompts)
