"""The project's fact bank: short questions with one answer and plausible wrong ones.

Two JSONL files under `interp/tasks/data/`, one question per line with the
fields `id`, `category`, `question`, `answer`, `wrong` (2-3 strings):

- `facts.jsonl`, written by hand (capitals, science, geography, animals, ...);
- `facts_generated.jsonl`, written by `python -m interp.tasks.factgen`
  (arithmetic, numeric comparisons, unit conversions), deterministic.

Example:
    >>> bank = load_fact_bank()
    >>> len(bank) >= 400
    True
    >>> bank[0].category
    'capitals'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from interp.tasks.example import ExampleFormatError
from interp.tasks.jsonrecords import read_package_text

FACT_FILES = ("facts.jsonl", "facts_generated.jsonl")
FACT_FIELDS = ("id", "category", "question", "answer", "wrong")


class FactBankError(ExampleFormatError):
    """A fact-bank line that is not valid; the message names file, line and field."""


@dataclass(frozen=True)
class Fact:
    """One question of the fact bank.

    Args:
        id: unique id, `<prefix>-<number>`; used as the `pair_id` of every
            example built from this question.
        category: e.g. `capitals`, `arithmetic`, `animals`.
        question: the question, ending in "?".
        answer: the correct answer, 1-3 words.
        wrong: 2-3 plausible wrong answers, none equal to `answer`.

    Example:
        >>> Fact("x-1", "demo", "What is 2 + 2?", "4", ("3", "5")).wrong
        ('3', '5')
    """

    id: str
    category: str
    question: str
    answer: str
    wrong: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the fields in file order."""
        return {
            "id": self.id,
            "category": self.category,
            "question": self.question,
            "answer": self.answer,
            "wrong": list(self.wrong),
        }


def fact_from_dict(record: Any) -> Fact:
    """Validate one decoded record and build a Fact.

    Raises:
        ValueError: naming the offending field.

    Example:
        >>> fact_from_dict({"id": "a-1", "category": "a", "question": "Q?",
        ...                 "answer": "x", "wrong": ["y", "z"]}).answer
        'x'
    """
    if not isinstance(record, dict):
        raise ValueError(f"record must be a JSON object, got {type(record).__name__}")
    for name in FACT_FIELDS:
        if name not in record:
            raise ValueError(f"missing field {name!r}")
    unknown = sorted(set(record) - set(FACT_FIELDS))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}")
    for name in ("id", "category", "question", "answer"):
        value = record[name]
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"field {name!r} must be a non-empty string, got {value!r}")
    wrong = record["wrong"]
    if not isinstance(wrong, list) or not 2 <= len(wrong) <= 3:
        raise ValueError(f"field 'wrong' must be a list of 2-3 strings, got {wrong!r}")
    if not all(isinstance(w, str) and w.strip() for w in wrong):
        raise ValueError("field 'wrong' must hold non-empty strings")
    if len(set(wrong)) != len(wrong):
        raise ValueError("field 'wrong' repeats an answer")
    if record["answer"] in wrong:
        raise ValueError(f"field 'wrong' contains the answer {record['answer']!r}")
    return Fact(
        id=record["id"],
        category=record["category"],
        question=record["question"],
        answer=record["answer"],
        wrong=tuple(wrong),
    )


def read_facts(path: str | Path, text: str | None = None) -> list[Fact]:
    """Read and validate a fact JSONL file.

    Args:
        path: the file (also used in error messages).
        text: the file's content, if already read (e.g. from package data).

    Raises:
        FactBankError: naming the file, the 1-based line and the field.

    Example:
        >>> facts = read_facts("x.jsonl", text='{"id": "a-1", "category": "a", '
        ...     '"question": "Q?", "answer": "x", "wrong": ["y", "z"]}\\n')
        >>> facts[0].id
        'a-1'
    """
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise FactBankError(f"{path}: cannot read ({e.strerror})") from None
    facts: list[Fact] = []
    ids: dict[str, int] = {}
    questions: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fact = fact_from_dict(json.loads(line))
        except json.JSONDecodeError as e:
            raise FactBankError(f"{path}, line {lineno}: not valid JSON ({e.msg})") from None
        except ValueError as e:
            raise FactBankError(f"{path}, line {lineno}: {e}") from None
        for name, seen, key in (("id", ids, fact.id), ("question", questions, fact.question)):
            if key in seen:
                raise FactBankError(f"{path}, line {lineno}: field {name!r} {key!r} repeats line {seen[key]}")
            seen[key] = lineno
        facts.append(fact)
    return facts


@lru_cache(maxsize=1)
def load_fact_bank() -> tuple[Fact, ...]:
    """The built-in fact bank (hand-written and generated files), validated, cached.

    Raises:
        FactBankError: if an id or a question repeats across the two files.

    Example:
        >>> sorted({f.category for f in load_fact_bank()})[:3]
        ['animals', 'arithmetic', 'body']
    """
    facts: list[Fact] = []
    for name in FACT_FILES:
        label, text = read_package_text(name)
        facts.extend(read_facts(label, text=text))
    check_unique(facts)
    return tuple(facts)


def check_unique(facts: Iterable[Fact]) -> None:
    """Raise FactBankError if two facts share an id or a question.

    Example:
        >>> check_unique([Fact("a-1", "a", "Q?", "x", ("y", "z"))])
    """
    ids: set[str] = set()
    questions: set[str] = set()
    for fact in facts:
        if fact.id in ids:
            raise FactBankError(f"fact bank: field 'id' {fact.id!r} repeats")
        if fact.question in questions:
            raise FactBankError(f"fact bank: field 'question' {fact.question!r} repeats")
        ids.add(fact.id)
        questions.add(fact.question)


def fact_categories() -> dict[str, int]:
    """Number of built-in questions per category, in first-seen order.

    Example:
        >>> fact_categories()["capitals"] >= 50
        True
    """
    counts: dict[str, int] = {}
    for fact in load_fact_bank():
        counts[fact.category] = counts.get(fact.category, 0) + 1
    return counts
