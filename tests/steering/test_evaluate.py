"""steering.evaluation.evaluate and steering.sweep.metrics: batched per-row strengths equal sequential cells, strength 0 is unsteered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from interp.scoring.frozen import score_choices_cached
from interp.scoring.profile import sycophancy_profile
from interp.scoring.reference import next_token_logprobs, score_choices
from steering.apply.spec import GENERATED_OFFSET, SteerSpec, steer_lengths
from steering.evaluation.evaluate import freeze, prompt_tokens, score_strengths
from steering.evaluation.splits import PairSplit
from steering.evaluation.testset import TestSetConfig, build_test_set
from steering.sweep.metrics import cell_metrics, kl_per_prompt, pair_effects
from tests.steering.builders import SMALL_TEST, reference_strengths, score_numbers


@pytest.fixture(scope="module")
def base(tiny_model, held_out):  # type: ignore[no-untyped-def]
    return score_strengths(tiny_model, held_out, None, [0.0], batch_size=8)[0]


@pytest.mark.parametrize("positions", ["all", "generated"])
def test_cached_scorer_equals_interp_score(tiny_model, held_out, vector, positions):
    spec = SteerSpec(vector, (1, 2), positions)
    for steering, strengths in ((None, [0.0]), (spec, [-3.0, 4.0])):
        full = reference_strengths(tiny_model, held_out, steering, strengths, batch_size=8)
        cached = score_strengths(tiny_model, held_out, steering, strengths, batch_size=8)
        for a, b in zip(full, cached, strict=True):
            np.testing.assert_allclose(score_numbers(a.rows), score_numbers(b.rows), atol=1e-4, equal_nan=True)
            torch.testing.assert_close(a.next_logprobs, b.next_logprobs, atol=1e-4, rtol=1e-4)
    # the raw table too: same (example, choice) rows, log-probs and token counts as interp.scoring.reference
    examples = list(held_out.examples)
    ref = score_choices(tiny_model, examples, batch_size=5)
    mine = score_choices_cached(tiny_model, examples, batch_size=5, next_token_of=[0]).table
    assert (ref[["example", "choice", "n_tokens"]].to_numpy() == mine[["example", "choice", "n_tokens"]].to_numpy()).all()
    np.testing.assert_allclose(ref.logprob, mine.logprob, atol=1e-4)


def test_frozen_prompt_prefix_gives_the_same_scores(tiny_model, held_out, vector):
    frozen = freeze(tiny_model, held_out)
    tokens = prompt_tokens(tiny_model, held_out.examples)
    assert list(frozen.lengths) == [n - 1 for n in tokens]  # everything before the last prompt token
    spec = SteerSpec(vector, (1, 3), "generated")
    for steering, strengths in ((None, [0.0]), (spec, [-3.0, 0.0, 4.0])):
        full = reference_strengths(tiny_model, held_out, steering, strengths, batch_size=8)
        fast = score_strengths(tiny_model, held_out, steering, strengths, batch_size=8, frozen=frozen)
        for a, b in zip(full, fast, strict=True):
            np.testing.assert_allclose(score_numbers(a.rows), score_numbers(b.rows), atol=1e-4, equal_nan=True)
            torch.testing.assert_close(a.next_logprobs, b.next_logprobs, atol=1e-4, rtol=1e-4)
    # with the frozen prefix, strength 0 is still exactly the unsteered evaluation
    base = score_strengths(tiny_model, held_out, None, [0.0], batch_size=8, frozen=frozen)[0]
    zero = score_strengths(tiny_model, held_out, spec, [0.0], batch_size=8, frozen=frozen)[0]
    pd.testing.assert_frame_equal(zero.rows, base.rows)
    assert torch.equal(zero.next_logprobs, base.next_logprobs)
    # "all" positions steer the prompt too: the frozen prefix is not used there (results differ from frozen use)
    every = score_strengths(tiny_model, held_out, SteerSpec(vector, (1,), "all"), [4.0], batch_size=8,
                            frozen=frozen)[0]
    direct = reference_strengths(tiny_model, held_out, SteerSpec(vector, (1,), "all"), [4.0], batch_size=8)[0]
    np.testing.assert_allclose(score_numbers(every.rows), score_numbers(direct.rows), atol=1e-4, equal_nan=True)


@pytest.mark.parametrize("positions", ["all", "generated"])
def test_batched_strengths_equal_sequential_cells(tiny_model, held_out, vector, positions):
    spec = SteerSpec(vector, (1,), positions)
    strengths = [-3.0, 2.0, 5.0]
    batched = score_strengths(tiny_model, held_out, spec, strengths, batch_size=8)
    assert [c.strength for c in batched] == strengths
    for cell, s in zip(batched, strengths, strict=True):
        single = score_strengths(tiny_model, held_out, spec, [s], batch_size=8)[0]
        np.testing.assert_allclose(score_numbers(cell.rows), score_numbers(single.rows), atol=1e-4, equal_nan=True)
        torch.testing.assert_close(cell.next_logprobs, single.next_logprobs, atol=1e-4, rtol=1e-4)
    # the strengths did different things (so the equality above could have failed)
    assert not np.allclose(batched[0].rows.margin.fillna(0), batched[2].rows.margin.fillna(0), atol=1e-3)


@pytest.mark.parametrize("positions", ["all", "generated"])
def test_strength_zero_is_exactly_the_unsteered_evaluation(tiny_model, held_out, vector, base, positions):
    zero = score_strengths(tiny_model, held_out, SteerSpec(vector, (0, 2), positions), [0.0], batch_size=8)[0]
    pd.testing.assert_frame_equal(zero.rows, base.rows)
    assert torch.equal(zero.next_logprobs, base.next_logprobs)
    metrics = cell_metrics(base, zero, held_out)
    assert metrics["kl"] == 0.0 and metrics["answer_shift_gain"] == 0.0 and metrics["neutral_accuracy_drop"] == 0.0
    with pytest.raises(ValueError, match="strength 0 only"):
        score_strengths(tiny_model, held_out, None, [1.0])


def test_generated_steers_from_the_last_prompt_token(tiny_model, held_out, vector, base):
    ex = held_out.examples[0]
    n_prompt = prompt_tokens(tiny_model, [ex])[0]
    assert steer_lengths([n_prompt]) == [n_prompt - GENERATED_OFFSET]
    ids = torch.tensor([tiny_model.tokenizer(tiny_model.render(ex.turns) + " Paris",
                                             add_special_tokens=False)["input_ids"]])
    with SteerSpec(vector, (1,), "generated").context(tiny_model, 2.0, [n_prompt]) as handle, torch.no_grad():
        tiny_model.hf(input_ids=ids)
    steered = handle.steered[0]  # type: ignore[attr-defined]
    assert not steered[: n_prompt - 1].any() and steered[n_prompt - 1 :].all()
    # so the next-token distribution at the answer position moves under "generated" steering
    cell = score_strengths(tiny_model, held_out, SteerSpec(vector, (1,), "generated"), [4.0], batch_size=8)[0]
    kl = kl_per_prompt(base.next_logprobs, cell.next_logprobs)
    assert (kl > 1e-6).all()


def test_next_token_logprobs_do_not_depend_on_batching(tiny_model, held_out):
    examples = list(held_out.examples[:6])
    together = next_token_logprobs(tiny_model, examples, batch_size=6)
    alone = torch.cat([next_token_logprobs(tiny_model, [ex], batch_size=1) for ex in examples])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)
    assert torch.allclose(together.exp().sum(-1), torch.ones(6), atol=1e-4)


def test_pair_effects_match_the_profile(base):
    effects = pair_effects(base.rows)
    profile = sycophancy_profile(base.rows)
    for task, effect in (("answer", "user_wrong"), ("mimicry", "user_false_attribution"), ("feedback", "user_wrote"),
                         ("are_you_sure", "challenge")):
        mine = effects[(effects.task == task) & (effects.effect == effect)]
        theirs = profile[task]["effects"][effect]
        assert mine["shift"].mean() == pytest.approx(theirs["shift"]["estimate"], abs=1e-9)
        assert mine["control_shift"].mean() == pytest.approx(theirs["control_shift"]["estimate"], abs=1e-9)
        assert mine["deference"].mean() == pytest.approx(theirs["deference"]["estimate"], abs=1e-9)


def test_cell_metrics_gains_are_paired_differences(tiny_model, held_out, vector, base):
    cell = score_strengths(tiny_model, held_out, SteerSpec(vector, (1,), "all"), [6.0], batch_size=8)[0]
    m = cell_metrics(base, cell, held_out)
    b, s = pair_effects(base.rows), pair_effects(cell.rows)
    pick = (b.task == "answer") & (b.effect == "user_wrong")
    assert m["answer_shift_gain"] == pytest.approx(b[pick]["shift"].mean() - s[pick]["shift"].mean())
    assert m["answer_shift_gain_low"] <= m["answer_shift_gain"] <= m["answer_shift_gain_high"]
    assert m["kl"] > 0 and {"capability_accuracy", "capability_drop", "user_right_accuracy_drop"} <= set(m)
    # KL: baseline prompts first, then the user-right prompts (both: on-task drift), then the general prompts
    kl = kl_per_prompt(base.next_logprobs, cell.next_logprobs)
    n_kl, n_right, n_general = (len(held_out.kl_index), len(held_out.user_right_index),
                                len(held_out.general_index))
    assert len(kl) == n_kl + n_right + n_general and n_right == 3 and n_general == SMALL_TEST.n_general > 0
    assert {held_out.examples[i].condition for i in held_out.user_right_index} == {"user_right"}
    assert {held_out.examples[i].task for i in held_out.general_index} == {"general"}
    assert m["kl"] == pytest.approx(kl[:n_kl].mean())
    assert m["kl_user_right"] == pytest.approx(kl[n_kl : n_kl + n_right].mean())
    assert m["kl_all"] == pytest.approx(kl[: n_kl + n_right].mean())
    assert m["kl_general"] == pytest.approx(kl[n_kl + n_right :].mean())  # no ARC file here: the general prompts
    # user-right accuracy on the questions the unsteered model knows
    rows_b, rows_s = base.rows.set_index("id"), cell.rows.set_index("id")
    known = {ex.pair_id for ex in held_out.examples if ex.task == "answer" and ex.condition == "neutral"
             and rows_b.loc[ex.id, "correct"] == 1.0}
    right = [ex.id for ex in held_out.examples if ex.condition == "user_right" and ex.pair_id in known]
    if right:
        assert m["user_right_known_accuracy"] == pytest.approx(rows_s.loc[right, "correct"].mean())
        assert m["user_right_known_accuracy_drop"] == pytest.approx(
            rows_b.loc[right, "correct"].mean() - rows_s.loc[right, "correct"].mean())
    with pytest.raises(ValueError, match="different examples"):
        cell_metrics(base, type(cell)(6.0, cell.rows.iloc[1:], cell.next_logprobs), held_out)


def test_test_set_is_on_the_test_side_and_takes_an_optional_arc_file(tmp_path):
    split = PairSplit(0, 0.3)
    test = build_test_set(TestSetConfig(n_answer=4, n_are_you_sure=2, n_mimicry=2, n_feedback=1, n_capability=3),
                          split)
    fact_pairs = {e.pair_id for e in test.examples if e.task in ("answer", "are_you_sure", "capability")}
    assert all(split.is_test(p) for p in {e.pair_id for e in test.examples})
    assert len(fact_pairs) == 4 + 2 + 3  # distinct questions per task
    assert {test.examples[i].condition for i in test.kl_index} == {"neutral", "no_challenge"}
    assert all(test.examples[i].task == "answer" for i in test.generation_index)
    arc = tmp_path / "arc.jsonl"
    arc.write_text('{"id": "q1", "question": "Which is a planet?", "choices": {"label": ["A", "B"], '
                   '"text": ["Mars", "Moon"]}, "answerKey": "A"}\n')
    with_arc = build_test_set(TestSetConfig(n_answer=2, n_are_you_sure=0, n_mimicry=0, n_feedback=0, n_capability=0,
                                            arc_path=str(arc), n_arc=1), split)
    assert [e.task for e in with_arc.examples].count("arc") == 1
    with pytest.raises(ValueError, match="2 ARC items asked"):
        build_test_set(TestSetConfig(n_answer=2, arc_path=str(arc), n_arc=2), split)


def test_a_gated_cell_runs_only_its_open_rows_and_equals_the_full_run(tiny_model, held_out, vector, base,
                                                                      monkeypatch):
    """Rows a gate shuts are unsteered at every strength: copied from the unsteered scores, they equal running them."""
    import steering.evaluation.evaluate as evaluate

    n = len(held_out.examples)
    scale = np.array([i % 3 == 0 for i in range(n)], dtype=float)  # a third of the rows open
    spec = SteerSpec(vector, (1,), "generated")
    frozen = freeze(tiny_model, held_out)
    full = score_strengths(tiny_model, held_out, spec, [-4.0, 4.0], batch_size=8, frozen=frozen, row_scale=scale)
    ran: list[int] = []
    scorer = evaluate.score_choices_cached
    monkeypatch.setattr(evaluate, "score_choices_cached", lambda m, exs, *a, **k: ran.append(len(exs)) or scorer(
        m, exs, *a, **k))
    fast = score_strengths(tiny_model, held_out, spec, [-4.0, 4.0], batch_size=8, frozen=frozen, row_scale=scale,
                           unsteered=base)
    assert ran == [2 * int(scale.sum())]  # the open rows of both strengths, nothing else
    for a, b in zip(full, fast, strict=True):
        assert list(a.rows.columns) == list(b.rows.columns) and list(a.rows.id) == list(b.rows.id)
        np.testing.assert_allclose(score_numbers(a.rows), score_numbers(b.rows), atol=1e-4, equal_nan=True)
        torch.testing.assert_close(a.next_logprobs, b.next_logprobs, atol=1e-4, rtol=1e-4)
    # the steering changed the open rows and only them: the shut rows are the unsteered ones exactly
    shut = scale == 0
    pd.testing.assert_frame_equal(fast[1].rows[shut], base.rows[shut])
    assert not np.allclose(score_numbers(fast[1].rows[~shut]), score_numbers(base.rows[~shut]), atol=1e-3)
    # a gate shut everywhere runs nothing: every strength is the unsteered cell
    none = score_strengths(tiny_model, held_out, spec, [4.0], batch_size=8, frozen=frozen, row_scale=np.zeros(n),
                           unsteered=base)[0]
    pd.testing.assert_frame_equal(none.rows, base.rows)
    with pytest.raises(ValueError, match="unsteered scores have"):
        score_strengths(tiny_model, held_out, spec, [4.0], row_scale=scale, unsteered=replace_rows(base, 2))


def replace_rows(cell, n):  # type: ignore[no-untyped-def]
    """The same cell with only its first `n` rows (a mismatched unsteered cell)."""
    from steering.evaluation.evaluate import CellScores

    return CellScores(cell.strength, cell.rows.iloc[:n], cell.next_logprobs)
