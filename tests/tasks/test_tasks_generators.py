"""Every generator produces well-formed, balanced, deterministic records."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from interp.tasks import (
    ANSWER_CONDITIONS,
    ARE_YOU_SURE_CONDITIONS,
    CAA_CONDITIONS,
    FEEDBACK_CONDITIONS,
    MIMICRY_CONDITIONS,
    Example,
    answer_task,
    are_you_sure_task,
    caa_task,
    demo_examples,
    feedback_task,
    load_fact_bank,
    mimicry_task,
    read_examples,
    write_examples,
)
from interp.tasks.feedback import load_feedback_items
from interp.tasks.mimicry import load_attributions

Builder = Callable[..., list[Example]]

#: task builder -> (its conditions, whether the correct position must be balanced, conditions without a claim)
SPECS: dict[str, tuple[Builder, tuple[str, ...], bool, set[str]]] = {
    "answer": (answer_task, ANSWER_CONDITIONS, True, {"neutral"}),
    "demo": (demo_examples, ANSWER_CONDITIONS, True, {"neutral"}),
    "are_you_sure": (are_you_sure_task, ARE_YOU_SURE_CONDITIONS, True, {"no_challenge"}),
    "caa": (caa_task, CAA_CONDITIONS, True, set()),
    "feedback": (feedback_task, FEEDBACK_CONDITIONS, False, {"neutral"}),
    "mimicry": (mimicry_task, MIMICRY_CONDITIONS, True, {"neutral"}),
}


def _by_pair(examples: list[Example]) -> dict[str, list[Example]]:
    groups: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        groups[ex.pair_id].append(ex)
    return groups


@pytest.mark.parametrize("name", sorted(SPECS))
def test_records_are_well_formed(name: str) -> None:
    builder, conditions, _, no_claim = SPECS[name]
    examples = builder()
    assert len({ex.id for ex in examples}) == len(examples)
    for ex in examples:
        assert ex.condition in conditions
        assert ex.turns[-1].role == "user"
        assert ex.choices, ex.id
        if ex.condition in no_claim:
            assert ex.user_claim is None, ex.id
        else:
            assert ex.user_claim and ex.user_claim in ex.last_user_text, ex.id
        if ex.correct is not None and ex.sycophantic is not None and ex.condition not in {"user_right"}:
            assert ex.sycophantic != ex.correct, ex.id


@pytest.mark.parametrize("name", sorted(SPECS))
def test_each_pair_has_every_condition_once_and_shares_choices(name: str) -> None:
    builder, conditions, _, _ = SPECS[name]
    for pair_id, group in _by_pair(builder(n=6, seed=3)).items():
        assert sorted(ex.condition for ex in group) == sorted(conditions), pair_id
        assert len({ex.choices for ex in group}) == 1, pair_id
        assert len({ex.correct for ex in group}) == 1, pair_id


@pytest.mark.parametrize("name", [n for n, spec in SPECS.items() if spec[2]])
@pytest.mark.parametrize(("n", "seed"), [(None, 0), (7, 1), (8, 5)])
def test_correct_position_is_balanced(name: str, n: int | None, seed: int) -> None:
    builder = SPECS[name][0]
    positions = Counter(group[0].correct for group in _by_pair(builder(n=n, seed=seed)).values())
    assert set(positions) == {0, 1}
    assert abs(positions[0] - positions[1]) <= 1, positions


@pytest.mark.parametrize("name", sorted(SPECS))
def test_deterministic_under_seed(name: str) -> None:
    builder = SPECS[name][0]
    n = 6 if name != "demo" else None
    assert builder(n=n, seed=11) == builder(n=n, seed=11)
    assert builder(n=n, seed=11) != builder(n=n, seed=12)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_n_out_of_range_is_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="n must be"):
        SPECS[name][0](n=0)
    with pytest.raises(ValueError, match="n must be"):
        SPECS[name][0](n=100_000)


def test_answer_claims_name_the_pushed_answer() -> None:
    for ex in answer_task(n=40, seed=2):
        assert ex.correct is not None
        correct = ex.choices[ex.correct]
        if ex.condition == "neutral":
            assert ex.sycophantic is None
            continue
        assert ex.sycophantic is not None and ex.user_claim is not None
        pushed = ex.choices[ex.sycophantic]
        other = ex.choices[1 - ex.sycophantic]
        named = correct if ex.condition in {"user_right", "user_doubts_right"} else pushed
        assert f"the answer is {named}" in ex.user_claim
        if ex.condition == "user_right":
            assert pushed == correct
        else:
            assert pushed != correct and other == correct
        if ex.condition == "third_party_wrong":
            assert not ex.user_claim.startswith("I ")  # type: ignore[union-attr]


def test_answer_uses_the_same_wrong_answer_for_user_and_third_party() -> None:
    for group in _by_pair(answer_task(n=30, seed=4)).values():
        by_condition = {ex.condition: ex for ex in group}
        user, third = by_condition["user_wrong"], by_condition["third_party_wrong"]
        assert user.choices[user.sycophantic] == third.choices[third.sycophantic]  # type: ignore[index]


def test_answer_choices_come_from_the_fact_bank() -> None:
    bank = {fact.id: fact for fact in load_fact_bank()}
    for ex in answer_task(n=50, seed=0):
        fact = bank[ex.pair_id]
        assert ex.choices[ex.correct] == fact.answer  # type: ignore[index]
        assert set(ex.choices) - {fact.answer} <= set(fact.wrong)
        assert fact.question in ex.turns[0].content


def test_demo_is_a_small_answer_set() -> None:
    demo = demo_examples()
    assert 24 <= len(demo) <= 40
    assert {ex.task for ex in demo} == {"answer"}
    assert all(ex.id.startswith("demo/") for ex in demo)


def test_caa_answers_point_at_the_right_letters() -> None:
    examples = caa_task(seed=0)
    letters: Counter[str] = Counter()
    for group in _by_pair(examples).values():
        syc, honest = sorted(group, key=lambda ex: ex.condition, reverse=True)
        assert (syc.condition, honest.condition) == ("sycophantic", "honest")
        assert syc.turns == honest.turns
        assert syc.answer == f"({syc.choices[syc.sycophantic]}"  # type: ignore[index]
        assert honest.answer == f"({honest.choices[honest.correct]}"  # type: ignore[index]
        prompt = syc.turns[0].content
        assert f"({syc.choices[syc.sycophantic]}) {syc.meta['wrong_text']}" in prompt  # type: ignore[index]
        assert f"({syc.choices[syc.correct]}) {syc.meta['correct_text']}" in prompt  # type: ignore[index]
        assert syc.meta["wrong_text"] in syc.user_claim  # type: ignore[operator]
        letters[honest.answer] += 1
    assert abs(letters["(A"] - letters["(B"]) <= 1


def test_are_you_sure_first_answer_defaults_to_correct_and_accepts_given_answers() -> None:
    ex = are_you_sure_task(n=3, seed=0)[0]
    assert ex.choices[ex.correct] in ex.turns[1].content  # type: ignore[index]
    given = {"capitals-001": "I believe it is Lyon.", "animals-001": "Six."}
    examples = are_you_sure_task(seed=0, first_answers=given)
    assert {ex.pair_id for ex in examples} == set(given)
    assert all(ex.turns[1].content == given[ex.pair_id] for ex in examples)
    assert all(ex.meta["first_answer"] == "given" for ex in examples)
    with pytest.raises(ValueError, match="first_answers"):
        are_you_sure_task(first_answers={"no-such-fact": "x"})


def test_feedback_items_are_graded_and_rated_one_to_ten() -> None:
    items = load_feedback_items()
    kinds = Counter(item.kind for item in items)
    assert set(kinds) == {"argument", "poem", "solution"} and min(kinds.values()) >= 15
    assert Counter(item.quality for item in items) == {"good": 15, "mediocre": 15, "bad": 15}
    for ex in feedback_task():
        assert ex.choices == tuple(str(i) for i in range(1, 11))
        assert ex.answer == "Rating: " and ex.correct is None
        assert ex.meta["quality_score"] == {"bad": 1, "mediocre": 2, "good": 3}[ex.meta["quality"]]
        assert "on a scale from 1 to 10" in ex.last_user_text


def test_mimicry_prompts_never_name_the_true_person() -> None:
    assert len(load_attributions()) >= 40
    for ex in mimicry_task():
        assert ex.correct is not None
        true, wrong = ex.choices[ex.correct], ex.choices[1 - ex.correct]
        assert true.startswith(" ") and wrong.startswith(" ")  # "... invented by" + " Name"
        true, wrong = true.strip(), wrong.strip()
        assert true not in ex.last_user_text
        assert ex.answer.endswith(" by")  # type: ignore[union-attr]
        if ex.condition == "neutral":
            assert wrong not in ex.last_user_text and ex.last_user_text.startswith("Who ")
        else:
            assert wrong in ex.user_claim and ex.choices[ex.sycophantic] == f" {wrong}"  # type: ignore[index,operator]


def test_all_records_round_trip_through_jsonl(tmp_path: Path) -> None:
    examples = [ex for spec in SPECS.values() for ex in spec[0](n=3, seed=0)]
    path = tmp_path / "examples.jsonl"
    write_examples(examples, path)
    assert read_examples(path) == examples
