"""The held-out test set a steered model is measured on: small, mixed, and on the TEST side of a split.

Sized for CPU. With the sweep's scorer (interp.scoring.frozen, prompts frozen for
positions "generated") a cell of this default set costs about 10 CPU-seconds
on SmolLM2-135M (about 280 short rows); a positions "all" cell costs a full
pass over the ~9k prompt tokens (about 40 CPU-seconds). Contents (defaults):

| task           | items | conditions                                              | measures |
| -------------- | ----- | ------------------------------------------------------- | -------- |
| `answer`       | 30    | neutral, user_wrong, third_party_wrong, user_right      | deference + its control, neutral and user-right accuracy |
| `are_you_sure` | 6     | no_challenge, challenge, third_party_challenge          | caving under "are you sure?" + control |
| `mimicry`      | 6     | neutral, user_false_attribution, third_party_false_attribution | repeating the user's false attribution + control |
| `feedback`     | 3     | neutral, user_wrote, other_wrote                        | rating shifted by authorship + control |
| `capability`   | 12    | neutral, 4 content-scored choices (fact bank)           | multiple-choice capability |
| `arc`          | 0     | neutral (optional ARC-format file)                      | external capability |
| `general`      | 24    | ordinary requests, no opinion (`interp.tasks.general`)  | drift where nothing should change (`kl_general`) |

Fact-bank items for answer, are_you_sure and capability are distinct test
questions. The answer task's opinion sentences and layouts are the "heldout"
pool by default (`wording`): wordings no vector or gate trains on. KL is read on
every baseline prompt (the neutral variant of each
task, and every capability/arc item), on the general prompts and ARC items
(`kl_general`: prompts that are not part of any task), and, separately, on the answer task's
user-right prompts: there the user is right, so any change steering makes is a
cost too, and it is where a pressure gate that spares neutral prompts still
steers. Generations (degeneracy) run on answer-neutral questions and on the same
questions with the user right.

Example:
    >>> test = build_test_set(TestSetConfig(n_answer=2, n_are_you_sure=1, n_mimicry=1, n_feedback=1,
    ...                                     n_capability=1), PairSplit(0, 0.3))
    >>> sorted({e.task for e in test.examples})
    ['answer', 'are_you_sure', 'capability', 'feedback', 'mimicry']
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from interp.records import Record
from interp.tasks import are_you_sure_task, feedback_task, load_fact_bank, mimicry_task, resolve_dataset
from interp.tasks.answer import answer_examples
from interp.tasks.example import Example, Turn
from interp.tasks.factbank import Fact
from interp.tasks.general import general_examples
from interp.tasks.sampling import task_rng
from interp.tasks.templates import ANSWER_WORDINGS, question_prompt
from steering.evaluation.splits import PairSplit

ANSWER_CONDITIONS = ("neutral", "user_wrong", "third_party_wrong", "user_right")
FEEDBACK_CONDITIONS = ("neutral", "user_wrote", "other_wrote")
#: task -> the condition whose prompts carry no opinion (KL and accuracy are read there)
BASELINES = {"answer": "neutral", "are_you_sure": "no_challenge", "mimicry": "neutral", "feedback": "neutral",
             "capability": "neutral", "arc": "neutral"}


@dataclass(frozen=True)
class TestSetConfig(Record):
    """How many test items of each task (0 leaves a task out).

    Args:
        n_answer: answer-task questions (4 conditions each).
        n_are_you_sure: are-you-sure dialogues (3 conditions each).
        n_mimicry: attributions (3 conditions each).
        n_feedback: texts to rate (3 conditions each).
        n_capability: fact-bank multiple-choice questions.
        capability_choices: choices per capability question (correct + wrong ones, at most 4).
        arc_path: an ARC-format JSONL for extra capability items (never required).
        n_arc: ARC items to use (the first n of the file).
        n_general: general prompts (`interp.tasks.general`: requests with no opinion, test side of the split).
        seed: seeds the item selection and the task generators.
        wording: the answer task's opinion sentences and layouts (`interp.tasks.templates.ANSWER_WORDINGS`):
            "heldout" (default: paraphrases and layouts no vector or gate trains on), "dev" (for tuning: also
            never trained on), or "bank" (the fact bank's one sentence, which training pools contain).
        categories: fact-bank categories the answer, are-you-sure and capability questions come from
            (empty: all); e.g. the categories a learned vector never trained on.
    """

    __test__ = False  # not a pytest class

    n_answer: int = 30
    n_are_you_sure: int = 6
    n_mimicry: int = 6
    n_feedback: int = 3
    n_capability: int = 12
    capability_choices: int = 4
    arc_path: str | None = None
    n_arc: int = 0
    n_general: int = 24
    seed: int = 0
    wording: str = "heldout"
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", tuple(self.categories))
        if self.wording not in ANSWER_WORDINGS:
            raise ValueError(f"unknown wording {self.wording!r}: choose from {', '.join(ANSWER_WORDINGS)}")
        counts = (self.n_answer, self.n_are_you_sure, self.n_mimicry, self.n_feedback, self.n_capability, self.n_arc,
                  self.n_general)
        if any(n < 0 for n in counts):
            raise ValueError("test-set sizes must be >= 0")
        if self.n_answer < 2:
            raise ValueError("the answer task needs at least 2 test questions (it carries the headline metrics)")
        if not 2 <= self.capability_choices <= 4:
            raise ValueError(f"capability_choices must be 2..4, got {self.capability_choices}")
        if self.n_arc and not self.arc_path:
            raise ValueError("n_arc > 0 needs arc_path")


@dataclass(frozen=True)
class TestSet:
    """The examples, in scoring order, and which of them feed KL and generation."""

    __test__ = False  # not a pytest class

    examples: tuple[Example, ...]
    kl_index: tuple[int, ...]
    generation_index: tuple[int, ...]
    user_right_index: tuple[int, ...] = ()
    general_index: tuple[int, ...] = ()

    @property
    def next_index(self) -> tuple[int, ...]:
        """Prompts whose next-token distribution is read: the baseline (KL) prompts, the user-right ones, then the
        general prompts."""
        return (*self.kl_index, *self.user_right_index, *self.general_index)

    @property
    def pair_ids(self) -> set[str]:
        return {ex.pair_id for ex in self.examples}

    def digest(self) -> str:
        """sha256 of the records (the sweep's resume check)."""
        h = hashlib.sha256()
        for ex in self.examples:
            h.update(json.dumps(ex.to_dict(), sort_keys=True).encode())
        return h.hexdigest()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for ex in self.examples:
            out[ex.task] = out.get(ex.task, 0) + 1
        return out


def _take(items: list[Any], n: int, what: str) -> list[Any]:
    if n > len(items):
        raise ValueError(f"test set: {n} {what} asked, the test side of the split holds {len(items)}")
    return items[:n]


def _shuffled_test_side(examples: list[Example], split: PairSplit, salt: str, seed: int) -> list[str]:
    pairs = [p for p in dict.fromkeys(ex.pair_id for ex in examples) if split.is_test(p)]
    task_rng(salt, seed).shuffle(pairs)
    return pairs


def capability_examples(facts: list[Fact], n_choices: int, seed: int) -> list[Example]:
    """Content-scored multiple choice from the fact bank: the correct answer and up to n-1 wrong ones.

    Example:
        >>> ex = capability_examples(list(load_fact_bank()[:1]), 3, seed=0)[0]
        >>> len(ex.choices), ex.task
        (3, 'capability')
    """
    rng = task_rng("steering-capability", seed)
    out = []
    for fact in facts:
        choices = [fact.answer, *fact.wrong[: n_choices - 1]]
        rng.shuffle(choices)
        out.append(Example(
            id=f"capability/{fact.id}", pair_id=fact.id, task="capability", condition="neutral",
            turns=(Turn("user", question_prompt(fact.question)),), choices=tuple(choices),
            correct=choices.index(fact.answer), meta={"category": fact.category, "question": fact.question},
        ))
    return out


def build_test_set(config: TestSetConfig, split: PairSplit) -> TestSet:
    """Build the test set from the TEST side of `split` only.

    Args:
        config: sizes and seed.
        split: the pair split; no pair of the train side appears.

    Raises:
        ValueError: when the test side holds fewer items than asked.
    """
    seed = config.seed
    rng = task_rng("steering-test-facts", seed)
    facts = [f for f in load_fact_bank() if split.is_test(f.id)
             and (not config.categories or f.category in config.categories)]
    rng.shuffle(facts)
    need = config.n_answer + config.n_are_you_sure + config.n_capability
    _take(facts, need, "fact-bank questions (answer + are_you_sure + capability)")
    answer_facts = facts[: config.n_answer]
    ays_facts = facts[config.n_answer : config.n_answer + config.n_are_you_sure]
    cap_facts = facts[config.n_answer + config.n_are_you_sure : need]
    examples = [ex for ex in answer_examples(answer_facts, seed, wording=config.wording)
                if ex.condition in ANSWER_CONDITIONS]
    if ays_facts:
        examples += are_you_sure_task(n=None, seed=seed, facts=ays_facts)
    if config.n_mimicry:
        pool = mimicry_task(n=None, seed=seed)
        keep = set(_take(_shuffled_test_side(pool, split, "steering-test-mimicry", seed), config.n_mimicry,
                         "mimicry items"))
        examples += [ex for ex in pool if ex.pair_id in keep]
    if config.n_feedback:
        pool = feedback_task(n=None, seed=seed)
        keep = set(_take(_shuffled_test_side(pool, split, "steering-test-feedback", seed), config.n_feedback,
                         "feedback texts"))
        examples += [ex for ex in pool if ex.pair_id in keep and ex.condition in FEEDBACK_CONDITIONS]
    examples += capability_examples(cap_facts, config.capability_choices, seed)
    if config.n_arc and config.arc_path:
        examples += _take(resolve_dataset(config.arc_path, "arc"), config.n_arc, "ARC items")
    if config.n_general:
        examples += _take([ex for ex in general_examples(None, seed) if split.is_test(ex.pair_id)],
                          config.n_general, "general prompts")
    kl = tuple(i for i, ex in enumerate(examples) if BASELINES.get(ex.task) == ex.condition)
    gen = tuple(i for i, ex in enumerate(examples) if ex.task == "answer" and ex.condition == "neutral")
    right = tuple(i for i, ex in enumerate(examples) if ex.task == "answer" and ex.condition == "user_right")
    general = tuple(i for i, ex in enumerate(examples) if ex.task == "general")
    return TestSet(tuple(examples), kl, gen, right, general)
