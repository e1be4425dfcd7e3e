"""What a learned vector trains on: groups of one question's variants, from the TRAIN side of a split.

A group is one question (pair id) of one task with its variants:

| task           | pressure (removed)        | baseline (kept)  | user right (kept) | third-party control (kept) |
| -------------- | ------------------------- | ---------------- | ----------------- | -------------------------- |
| `answer`       | `user_wrong`              | `neutral`        | `user_right`      | `third_party_wrong`        |
| `are_you_sure` | `challenge`               | `no_challenge`   | -                 | `third_party_challenge`    |
| `mimicry`      | `user_false_attribution`  | `neutral`        | -                 | `third_party_false_attribution` |
| `feedback`     | `user_wrote`              | `neutral`        | -                 | `other_wrote`              |

The answer task's opinion sentences and layouts are drawn from a pool of paraphrases
(`wording="varied"`: hundreds built from parts; "train": 14 sentences and 9 layouts;
`interp.tasks.templates.ANSWER_WORDINGS`), never from the dev or
held-out pools the tuning and transfer measurements use. Whole fact-bank categories can be
left out (`exclude_categories`) to measure transfer to unseen subjects. A
second, seeded grouped split of the training pairs gives the validation
groups that early stopping reads: no pair is on both sides.

Example:
    >>> train, val = learning_groups(PairSplit(0, 0.3), tasks=("answer",), n_pairs=10, seed=0)
    >>> sorted(train[0].examples) == ['neutral', 'third_party_wrong', 'user_right', 'user_wrong']
    True
    >>> not {g.pair_id for g in train} & {g.pair_id for g in val}
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from interp.tasks import are_you_sure_task, feedback_task, load_fact_bank, mimicry_task
from interp.tasks.answer import answer_examples
from interp.tasks.example import Example
from interp.tasks.sampling import select, task_rng
from steering.evaluation.splits import PairSplit

#: task -> (pressure, baseline, user right or None, third-party control)
ROLES: dict[str, tuple[str, str, str | None, str]] = {
    "answer": ("user_wrong", "neutral", "user_right", "third_party_wrong"),
    "are_you_sure": ("challenge", "no_challenge", None, "third_party_challenge"),
    "mimicry": ("user_false_attribution", "neutral", None, "third_party_false_attribution"),
    "feedback": ("user_wrote", "neutral", None, "other_wrote"),
}
#: pairs of each task per `n_pairs` answer questions (the answer task carries the headline metric)
SHARE = {"answer": 1.0, "are_you_sure": 0.5, "mimicry": 0.5, "feedback": 0.5}
VAL_SALT = 7919


@dataclass(frozen=True)
class Group:
    """One question's variants in one task: condition -> example."""

    task: str
    pair_id: str
    examples: dict[str, Example]

    @property
    def pressure(self) -> Example:
        return self.examples[ROLES[self.task][0]]

    @property
    def baseline(self) -> Example:
        return self.examples[ROLES[self.task][1]]

    @property
    def user_right(self) -> Example | None:
        role = ROLES[self.task][2]
        return None if role is None else self.examples[role]

    @property
    def control(self) -> Example:
        return self.examples[ROLES[self.task][3]]


def _task_examples(task: str, split: PairSplit, n: int, seed: int, wording: str,
                   exclude_categories: Sequence[str]) -> list[Example]:
    rng = task_rng(f"learned-{task}", seed)
    if task in ("answer", "are_you_sure"):
        facts = [f for f in load_fact_bank() if not split.is_test(f.id) and f.category not in exclude_categories]
        # the two fact-bank tasks use disjoint questions, so validation of one never saw the other's answer
        facts = select(facts, min(len(facts), n * 2), rng)
        facts = facts[:n] if task == "answer" else facts[-n:]
        if task == "answer":
            return answer_examples(facts, seed, id_prefix="learned", wording=wording)
        return are_you_sure_task(n=None, seed=seed, facts=facts)
    pool = (mimicry_task if task == "mimicry" else feedback_task)(n=None, seed=seed)
    pairs = [p for p in dict.fromkeys(ex.pair_id for ex in pool) if not split.is_test(p)]
    keep = set(select(pairs, min(n, len(pairs)), rng))
    return [ex for ex in pool if ex.pair_id in keep]


def learning_groups(
    split: PairSplit, tasks: Sequence[str] = tuple(ROLES), n_pairs: int = 64, seed: int = 0,
    wording: str = "varied", exclude_categories: Sequence[str] = (), val_fraction: float = 0.2,
) -> tuple[list[Group], list[Group]]:
    """Training and validation groups from the TRAIN side of `split`.

    Args:
        split: the sweep's pair split; no test-side pair is read.
        tasks: keys of ROLES.
        n_pairs: answer questions; other tasks take `SHARE[task] * n_pairs` pairs (as many as exist).
        seed: task generation and subset seed.
        wording: the answer task's opinion sentences ("varied" or "train" paraphrases; "bank": the fact bank's one).
        exclude_categories: fact-bank categories never trained on (transfer to unseen subjects).
        val_fraction: share of training pairs held out for early stopping (grouped by pair).

    Returns:
        (train groups, validation groups), each sorted by (task, pair id).
    """
    unknown = [t for t in tasks if t not in ROLES]
    if unknown:
        raise ValueError(f"unknown learning task {unknown[0]!r}: choose from {', '.join(ROLES)}")
    if n_pairs < 2:
        raise ValueError(f"n_pairs must be >= 2, got {n_pairs}")
    val = PairSplit(seed + VAL_SALT, val_fraction)
    train: list[Group] = []
    held: list[Group] = []
    for task in tasks:
        wanted = set(r for r in ROLES[task] if r is not None)
        by_pair: dict[str, dict[str, Example]] = {}
        n = max(2, round(SHARE[task] * n_pairs))
        for ex in _task_examples(task, split, n, seed, wording, exclude_categories):
            if ex.condition in wanted:
                by_pair.setdefault(ex.pair_id, {})[ex.condition] = ex
        for pair_id, examples in sorted(by_pair.items()):
            if set(examples) != wanted:
                continue
            (held if val.is_test(pair_id) else train).append(Group(task, pair_id, examples))
    if not train or not held:
        raise ValueError(f"{len(train)} training and {len(held)} validation groups: raise n_pairs or val_fraction")
    return train, held
