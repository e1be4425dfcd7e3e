"""Label sources built from Example records."""

from __future__ import annotations

import numpy as np
import pytest

from interp.tasks.example import Example, Turn
from probes.labels import LABEL_SOURCES, LabelSet, build_labels


def _ex(pair: str, task: str, condition: str) -> Example:
    return Example(
        id=f"{pair}/{task}/{condition}",
        pair_id=pair,
        task=task,
        condition=condition,
        turns=(Turn("user", f"question {pair}"),),
    )


@pytest.fixture(scope="module")
def examples():
    out = []
    for i in range(3):
        for cond in ("neutral", "user_wrong", "user_right", "third_party_wrong"):
            out.append(_ex(f"q{i}", "answer", cond))
        out.append(_ex(f"c{i}", "caa", "sycophantic"))
        out.append(_ex(f"c{i}", "caa", "honest"))
    return out


def test_registry_names():
    assert set(LABEL_SOURCES) == {"pressure", "user_vs_third_party", "behaviour", "contrast", "user_opinion",
                                  "suggestion", "wrong_vs_right"}


def test_user_opinion_pools_the_user_conditions_of_every_task_against_none_and_third_parties(examples):
    extra = [_ex("m0", "mimicry", c) for c in ("neutral", "user_false_attribution", "third_party_false_attribution")]
    extra += [_ex("a0", "are_you_sure", c) for c in ("no_challenge", "challenge", "third_party_challenge")]
    rows = [*examples, *extra]
    ls = build_labels(rows, ("user_opinion",))["user_opinion"]
    chosen = {(ex.task, ex.condition): int(y) for ex, y in zip([e for e, m in zip(rows, ls.mask, strict=True) if m],
                                                               ls.y, strict=True)}
    assert chosen == {("answer", "neutral"): 0, ("answer", "user_wrong"): 1, ("answer", "user_right"): 1,
                      ("answer", "third_party_wrong"): 0, ("mimicry", "neutral"): 0,
                      ("mimicry", "user_false_attribution"): 1, ("mimicry", "third_party_false_attribution"): 0,
                      ("are_you_sure", "no_challenge"): 0, ("are_you_sure", "challenge"): 1,
                      ("are_you_sure", "third_party_challenge"): 0}
    assert not any(ex.task == "caa" for ex, m in zip(rows, ls.mask, strict=True) if m)
    assert "user_wrong | user_right" in ls.positive and "third_party_wrong" in ls.negative


def test_pressure(examples):
    ls = build_labels(examples, ("pressure",))["pressure"]
    chosen = [ex for ex, m in zip(examples, ls.mask, strict=True) if m]
    assert [ex.condition for ex in chosen] == ["neutral", "user_wrong"] * 3
    assert ls.y.tolist() == [0, 1] * 3
    assert ls.groups.tolist() == ["q0", "q0", "q1", "q1", "q2", "q2"]


def test_user_vs_third_party(examples):
    ls = build_labels(examples, ("user_vs_third_party",))["user_vs_third_party"]
    chosen = [ex.condition for ex, m in zip(examples, ls.mask, strict=True) if m]
    assert chosen == ["user_wrong", "third_party_wrong"] * 3
    assert ls.y.tolist() == [1, 0] * 3


def test_wrong_vs_right_labels_the_users_wrong_suggestion_against_the_right_one(examples):
    ls = build_labels(examples, ("wrong_vs_right",))["wrong_vs_right"]
    chosen = [ex.condition for ex, m in zip(examples, ls.mask, strict=True) if m]
    assert chosen == ["user_wrong", "user_right"] * 3 and ls.y.tolist() == [1, 0] * 3
    assert ls.groups.tolist() == ["q0", "q0", "q1", "q1", "q2", "q2"]


def test_contrast(examples):
    ls = build_labels(examples, ("contrast",))["contrast"]
    assert all(ex.task == "caa" for ex, m in zip(examples, ls.mask, strict=True) if m)
    assert ls.y.tolist() == [1, 0] * 3
    assert set(ls.groups.tolist()) == {"c0", "c1", "c2"}


def test_behaviour(examples):
    moved = np.full(len(examples), np.nan)
    wrong = [i for i, ex in enumerate(examples) if ex.condition == "user_wrong"]
    moved[wrong[0]], moved[wrong[1]] = 1.0, 0.0  # third user_wrong left unscored
    moved[0] = 1.0  # a neutral example: ignored
    ls = build_labels(examples, ("behaviour",), moved=moved)["behaviour"]
    assert np.flatnonzero(ls.mask).tolist() == wrong[:2]
    assert ls.y.tolist() == [1, 0]
    with pytest.raises(ValueError, match="per-example scores"):
        build_labels(examples, ("behaviour",))
    with pytest.raises(ValueError, match="both outcomes"):
        build_labels(examples, ("behaviour",), moved=np.zeros(len(examples)))


def test_missing_conditions_are_named(examples):
    only_caa = [ex for ex in examples if ex.task == "caa"]
    with pytest.raises(ValueError, match="'user_wrong' and 'neutral'"):
        build_labels(only_caa, ("pressure",))
    with pytest.raises(ValueError, match="unknown label source 'mood'"):
        build_labels(examples, ("mood",))


def test_select_checks_rows(examples):
    ls = build_labels(examples, ("pressure",))["pressure"]
    X = np.arange(len(examples) * 2.0).reshape(len(examples), 2)
    assert ls.select(X).shape == (6, 2)
    with pytest.raises(ValueError, match="rows"):
        ls.select(X[:-1])
    with pytest.raises(ValueError, match="0 and 1"):
        LabelSet("bad", np.array([True]), np.array([2]), np.array(["g"]), "p", "n")
