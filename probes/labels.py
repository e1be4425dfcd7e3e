"""Label sources: turn Example records into (mask, y, groups) for a probe. THE one registry (`LABEL_SOURCES`).

A label source names its task(s), positive and negative conditions and the position it is read at;
probes, steering vectors (`steering.methods.statistics`), gates (`steering.methods.gates`) and the
probe job all read them from here. A new label source is one entry in this file.

Each source picks the examples it uses (`mask` over the full list, aligned with
the activation rows) and labels them 1 (positive) or 0 (negative):

- `pressure`: answer task, user suggests a wrong answer (1) vs neutral (0).
- `user_vs_third_party`: user suggests the wrong answer (1) vs a third party
  suggests it (0). A probe that cannot tell these apart reads "a wrong answer is
  in context", not deference to the user.
- `behaviour`: user_wrong examples of the answer task, 1 where the model moved to
  the user's answer (needs per-example scores).
- `contrast`: CAA-style A/B items, sycophantic (1) vs honest (0) completion.
- `user_opinion`: over the four tasks, the user states an opinion or claim (1) vs
  no opinion or a third party's (0), and general requests with no opinion
  (`interp.tasks.general`, 0): what a steering gate for user pressure must detect.
- `suggestion`: anybody (user or third party) suggests an answer or claim (1) vs
  no opinion at all (0): "an answer is in context", what this model copies.
- `wrong_vs_right`: answer task, the user suggests the wrong answer (1) vs the right
  one (0): whether the model represents that the user is wrong, which a vector or
  gate must read to remove deference without contrarianism (on SmolLM2 it does
  not, at the last prompt token: docs/results/frontier.md).

Example:
    >>> from interp.tasks.example import Example, Turn
    >>> exs = [Example(id=f"q/{c}", pair_id="q", task="answer", condition=c, turns=(Turn("user", "hi"),))
    ...        for c in ("neutral", "user_wrong")]
    >>> build_labels(exs, ("pressure",))["pressure"].y.tolist()
    [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from interp.tasks.example import Example


@dataclass(frozen=True, eq=False)
class LabelSet:
    """Binary labels for a subset of examples.

    Args:
        source: name of the label source.
        mask: [n_examples] bool, which examples (activation rows) take part.
        y: [mask.sum()] int labels in {0, 1}.
        groups: [mask.sum()] pair ids, for grouped splits.
        positive: what y = 1 means.
        negative: what y = 0 means.

    Example:
        >>> ls = LabelSet("demo", np.array([True, False, True]), np.array([0, 1]), np.array(["a", "a"]), "p", "n")
        >>> ls.select(np.arange(6).reshape(3, 2)).tolist()
        [[0, 1], [4, 5]]
    """

    source: str
    mask: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    positive: str
    negative: str

    def __post_init__(self) -> None:
        mask = np.asarray(self.mask, dtype=bool)
        y = np.asarray(self.y).astype(np.int64)
        groups = np.asarray(self.groups)
        if mask.ndim != 1 or len(y) != int(mask.sum()) or len(groups) != len(y):
            raise ValueError(f"mask selects {int(mask.sum())} rows but y has {len(y)} and groups {len(groups)}")
        if not np.isin(y, (0, 1)).all():
            raise ValueError("y must hold only 0 and 1")
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "groups", groups)

    @property
    def n(self) -> int:
        return len(self.y)

    def select(self, X: np.ndarray) -> np.ndarray:
        """Rows of X [n_examples, ...] that take part, [n, ...]."""
        if len(X) != len(self.mask):
            raise ValueError(f"features have {len(X)} rows but the labels cover {len(self.mask)} examples")
        return X[self.mask]


@dataclass(frozen=True)
class ConditionSource:
    """A label source read off the conditions: `positive` (1) vs `negative` (0) examples of `tasks`, at `position`.

    `positive` and `negative` are one condition name or a tuple of them (a source
    may pool conditions of several tasks). Called like every source of
    LABEL_SOURCES: `(examples, moved=None, tasks=None) -> LabelSet` (`moved` is
    unused; `tasks` overrides the default tasks).

    Example:
        >>> from interp.tasks.example import Example, Turn
        >>> ex = lambda c: Example(id=c, pair_id="q", task="answer", condition=c, turns=(Turn("user", "?"),))
        >>> pressure_labels([ex("neutral"), ex("user_wrong"), ex("user_right")]).y.tolist()
        [0, 1]
    """

    name: str
    positive: str | tuple[str, ...]
    negative: str | tuple[str, ...]
    tasks: tuple[str, ...]
    position: str = "last_prompt"

    @staticmethod
    def _names(value: str | tuple[str, ...]) -> tuple[str, ...]:
        return (value,) if isinstance(value, str) else tuple(value)

    @property
    def conditions(self) -> tuple[str, ...]:
        """Every labelled condition, positive then negative."""
        return self._names(self.positive) + self._names(self.negative)

    @property
    def task(self) -> str:
        """The one task of a single-task source (a steering vector's training data)."""
        if len(self.tasks) != 1:
            raise ValueError(f"label source {self.name!r} spans tasks {list(self.tasks)}, not one")
        return self.tasks[0]

    def __call__(self, examples: Sequence[Example], moved: np.ndarray | None = None,
                 tasks: tuple[str, ...] | None = None) -> LabelSet:
        tasks = self.tasks if tasks is None else tasks
        pos, neg = self._names(self.positive), self._names(self.negative)
        cond = np.array([ex.condition for ex in examples])
        task_ok = np.array([ex.task in tasks for ex in examples], dtype=bool)
        is_pos = task_ok & np.isin(cond, pos)
        mask = is_pos | (task_ok & np.isin(cond, neg))
        found_pos = int(is_pos.sum())
        found_neg = int((mask & ~is_pos).sum())
        if found_pos == 0 or found_neg == 0:
            seen = sorted({(ex.task, ex.condition) for ex in examples})
            raise ValueError(
                f"label source {self.name!r} needs tasks {list(tasks)} with conditions {' | '.join(pos)!r} and "
                f"{' | '.join(neg)!r}; found {found_pos} and {found_neg} (examples have task/condition {seen[:12]})"
            )
        y = is_pos[mask].astype(np.int64)
        groups = np.array([ex.pair_id for ex, m in zip(examples, mask, strict=True) if m])
        return LabelSet(self.name, mask, y, groups, " | ".join(pos), " | ".join(neg))


#: the user suggests the wrong answer (1) vs the neutral question (0)
pressure_labels = ConditionSource("pressure", "user_wrong", "neutral", ("answer",))
#: the user suggests the wrong answer (1) vs the right answer (0): "the model knows the user is wrong"
wrong_vs_right_labels = ConditionSource("wrong_vs_right", "user_wrong", "user_right", ("answer",))
#: the user suggests the wrong answer (1) vs a third party suggests it (0)
user_vs_third_party_labels = ConditionSource("user_vs_third_party", "user_wrong", "third_party_wrong", ("answer",))
#: CAA-style contrast: sycophantic (1) vs honest (0) completion of the same item
contrast_labels = ConditionSource("contrast", "sycophantic", "honest", ("caa",), position="answer")
#: the user states an opinion or a claim of their own (1) vs no opinion, or a third party's (0), over the four
#: Sharma et al. tasks: what a pressure gate for steering must detect (and not fire on a quoted textbook)
USER_OPINION = ("user_wrong", "user_right", "user_doubts_right", "challenge", "user_false_attribution", "user_wrote",
                "user_likes", "user_dislikes")
NO_USER_OPINION = ("neutral", "no_challenge", "third_party_wrong", "third_party_challenge",
                   "third_party_false_attribution", "other_wrote")
user_opinion_labels = ConditionSource("user_opinion", USER_OPINION, NO_USER_OPINION,
                                      ("answer", "are_you_sure", "mimicry", "feedback", "general"))
#: somebody (the user or a third party) suggests an answer, a judgment or an attribution (1) vs no opinion at all
#: (0): what the model copies, whoever states it (a gate for "an answer is in context")
THIRD_PARTY = ("third_party_wrong", "third_party_challenge", "third_party_false_attribution", "other_wrote")
NO_OPINION = ("neutral", "no_challenge")
suggestion_labels = ConditionSource("suggestion", (*USER_OPINION, *THIRD_PARTY), NO_OPINION,
                                    ("answer", "are_you_sure", "mimicry", "feedback", "general"))


def behaviour_labels(
    examples: Sequence[Example], moved: np.ndarray | None = None, tasks: tuple[str, ...] = ("answer",)
) -> LabelSet:
    """Did the model move to the user's wrong answer? Labels on user_wrong examples.

    Args:
        examples: all examples, in activation-row order.
        moved: [n_examples] per-example "moved to the user's answer" (bool, or
            float with NaN for unscored); only user_wrong examples are read.
        tasks: tasks whose examples take part.

    Raises:
        ValueError: without `moved`, with a length mismatch, or with a single class.

    Example:
        >>> from interp.tasks.example import Example, Turn
        >>> ex = lambda c: Example(id=c, pair_id="q", task="answer", condition=c, turns=(Turn("user", "?"),))
        >>> behaviour_labels([ex("user_wrong"), ex("neutral"), ex("user_wrong")], np.array([1.0, 1.0, 0.0])).y.tolist()
        [1, 0]
    """
    if moved is None:
        raise ValueError("label source 'behaviour' needs per-example scores (moved to the user's answer)")
    scores = np.asarray(moved, dtype=np.float64)  # [n_examples]; None -> NaN
    if scores.shape != (len(examples),):
        raise ValueError(f"moved has shape {scores.shape}, expected ({len(examples)},)")
    is_target = np.array([ex.task in tasks and ex.condition == "user_wrong" for ex in examples], dtype=bool)
    mask = is_target & ~np.isnan(scores)
    y = (scores[mask] > 0.5).astype(np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError(
            f"label source 'behaviour' needs both outcomes on user_wrong examples; "
            f"got {int(y.sum())} moved of {len(y)} scored"
        )
    groups = np.array([ex.pair_id for ex, m in zip(examples, mask, strict=True) if m])
    return LabelSet("behaviour", mask, y, groups, "moved to the user's answer", "kept its answer")


#: per task: (positive, negative) condition of "the user pushes an opinion" vs its baseline
PRESSURE_BY_TASK = {
    "answer": ("user_wrong", "neutral"),
    "are_you_sure": ("challenge", "no_challenge"),
    "feedback": ("user_wrote", "neutral"),
    "mimicry": ("user_false_attribution", "neutral"),
}


def pressure_any_task_labels(examples: Sequence[Example]) -> tuple[LabelSet, np.ndarray]:
    """One label over every task (opinion (1) vs its baseline (0), `PRESSURE_BY_TASK`) and each row's task.

    Groups are `task/pair_id`, so a cross-task generalisation matrix never splits a question.

    Example:
        >>> from interp.tasks.example import Example, Turn
        >>> ex = lambda t, c: Example(id=t + c, pair_id="q", task=t, condition=c, turns=(Turn("user", "?"),))
        >>> ls, tasks = pressure_any_task_labels([ex("answer", "neutral"), ex("mimicry", "user_false_attribution")])
        >>> ls.y.tolist(), tasks.tolist()
        ([0, 1], ['answer', 'mimicry'])
    """
    keep = []
    for i, ex in enumerate(examples):
        pair = PRESSURE_BY_TASK.get(ex.task)
        if pair and ex.condition in pair:
            keep.append(i)
    mask = np.zeros(len(examples), dtype=bool)
    mask[keep] = True
    y = np.array([int(examples[i].condition == PRESSURE_BY_TASK[examples[i].task][0]) for i in keep])
    groups = np.array([f"{examples[i].task}/{examples[i].pair_id}" for i in keep])
    return LabelSet("pressure_any_task", mask, y, groups, "opinion", "baseline"), np.array([examples[i].task for i in keep])


#: where each label source can be read by the probe job: the CAA contrast differs only in the answer letter, so
#: its prompt positions are identical for both classes; the others have no answer prefix on the answer task
SOURCE_POSITIONS: dict[str, tuple[str, ...]] = {"contrast": ("answer",)}
PROMPT_POSITIONS = ("last_prompt", "user_claim")


def readable_positions(source: str) -> tuple[str, ...]:
    """The positions a probe on `source` may be read at (`SOURCE_POSITIONS`, else the prompt positions)."""
    return SOURCE_POSITIONS.get(source, PROMPT_POSITIONS)


LabelSource = Callable[[Sequence[Example], np.ndarray | None], LabelSet]

LABEL_SOURCES: dict[str, LabelSource] = {
    "pressure": pressure_labels,
    "user_vs_third_party": user_vs_third_party_labels,
    "behaviour": behaviour_labels,
    "contrast": contrast_labels,
    "user_opinion": user_opinion_labels,
    "suggestion": suggestion_labels,
    "wrong_vs_right": wrong_vs_right_labels,
}

#: the sources read off conditions alone (no per-example scores): what vectors and gates train on
CONDITION_SOURCES: dict[str, ConditionSource] = {
    name: source for name, source in LABEL_SOURCES.items() if isinstance(source, ConditionSource)
}


def build_labels(
    examples: Sequence[Example],
    sources: Sequence[str],
    moved: np.ndarray | None = None,
) -> dict[str, LabelSet]:
    """Label sets for the named sources.

    Args:
        examples: all examples, in activation-row order.
        sources: keys of LABEL_SOURCES.
        moved: per-example behaviour scores (needed by "behaviour").

    Example:
        >>> build_labels([], ())
        {}
    """
    out: dict[str, LabelSet] = {}
    for name in sources:
        if name not in LABEL_SOURCES:
            raise ValueError(f"unknown label source {name!r}; known: {sorted(LABEL_SOURCES)}")
        out[name] = LABEL_SOURCES[name](examples, moved)
    return out
