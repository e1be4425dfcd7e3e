"""Deterministic generator of the fact bank's computed questions.

Arithmetic (small sums, differences, products, quotients), numeric
comparisons and unit conversions are generated here from a fixed seed and
written to `interp/tasks/data/facts_generated.jsonl`, so the file can be
reviewed and a test can check it still matches this script.

Run `python -m interp.tasks.factgen` to rewrite the file.

Example:
    >>> facts = generate_facts()
    >>> facts[0].question, facts[0].answer
    ('What is 17 + 7?', '24')
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from interp.tasks.factbank import Fact

GENERATED_FILE = Path(__file__).parent / "data" / "facts_generated.jsonl"
DEFAULT_SEED = 2024

#: unit question -> (factor from the larger to the smaller unit, a plausible wrong factor).
UNIT_CONVERSIONS: dict[str, tuple[int, int]] = {
    "How many minutes are in {n} hours?": (60, 100),
    "How many seconds are in {n} minutes?": (60, 100),
    "How many hours are in {n} days?": (24, 12),
    "How many days are in {n} weeks?": (7, 5),
    "How many months are in {n} years?": (12, 10),
    "How many centimeters are in {n} meters?": (100, 10),
    "How many grams are in {n} kilograms?": (1000, 100),
    "How many meters are in {n} kilometers?": (1000, 100),
}


def _wrong_numbers(answer: int, candidates: list[int], rng: random.Random) -> list[str]:
    """Three distinct positive wrong values, drawn in order of preference."""
    seen = {answer}
    out: list[str] = []
    pool = [c for c in candidates if c > 0]
    rng.shuffle(pool)
    for c in pool:
        if c not in seen:
            seen.add(c)
            out.append(str(c))
        if len(out) == 3:
            break
    return out


def _arithmetic(rng: random.Random) -> list[tuple[str, int, list[int]]]:
    """(question, answer, wrong candidates) for 80 small calculations."""
    items: list[tuple[str, int, list[int]]] = []
    seen: set[str] = set()

    def add(question: str, answer: int, near: list[int]) -> bool:
        if question in seen:
            return False
        seen.add(question)
        items.append((question, answer, near))
        return True

    quotas = {"+": 25, "-": 20, "times": 20, "divided by": 15}
    for op, quota in quotas.items():
        made = 0
        while made < quota:
            a, b = rng.randint(2, 20), rng.randint(2, 20)
            if op == "+":
                q, ans = f"What is {a} + {b}?", a + b
                near = [ans - 1, ans + 1, ans + 2, ans - 2, ans + 10, ans - 10]
            elif op == "-":
                a, b = max(a, b) + rng.randint(1, 9), min(a, b)
                q, ans = f"What is {a} - {b}?", a - b
                near = [ans - 1, ans + 1, ans + 2, a + b, ans + 10]
            elif op == "times":
                a, b = rng.randint(2, 12), rng.randint(2, 12)
                q, ans = f"What is {a} times {b}?", a * b
                near = [a * (b + 1), (a + 1) * b, a + b, ans + 1, ans - 1, a * (b - 1)]
            else:
                a, b = rng.randint(2, 10), rng.randint(2, 10)
                q, ans = f"What is {a * b} divided by {a}?", b
                near = [b + 1, b - 1, b + 2, a, b * 2]
            if add(q, ans, [n for n in near if n != ans]):
                made += 1
    return items


def _comparisons(rng: random.Random) -> list[tuple[str, int, list[int]]]:
    """(question, answer, the other two numbers) for 25 three-number comparisons."""
    items: list[tuple[str, int, list[int]]] = []
    seen: set[str] = set()
    while len(items) < 25:
        a = rng.randint(12, 98)
        swapped = int(str(a)[::-1])
        third = rng.randint(10, 99)
        numbers = [a, swapped, third]
        if len(set(numbers)) < 3 or swapped < 10:
            continue
        rng.shuffle(numbers)
        largest = len(items) % 2 == 0
        word = "largest" if largest else "smallest"
        q = f"Which number is the {word}: {numbers[0]}, {numbers[1]}, or {numbers[2]}?"
        if q in seen:
            continue
        seen.add(q)
        ans = max(numbers) if largest else min(numbers)
        items.append((q, ans, [x for x in numbers if x != ans]))
    return items


def _units(rng: random.Random) -> list[tuple[str, int, list[int]]]:
    """(question, answer, wrong candidates) for 24 unit conversions (3 per unit)."""
    items: list[tuple[str, int, list[int]]] = []
    for template, (factor, wrong_factor) in UNIT_CONVERSIONS.items():
        for n in rng.sample(range(2, 10), 3):
            ans = n * factor
            near = [n * wrong_factor, (n + 1) * factor, (n - 1) * factor, ans + factor // 2]
            items.append((template.format(n=n), ans, near))
    return items


def generate_facts(seed: int = DEFAULT_SEED) -> list[Fact]:
    """The generated part of the fact bank, identical for a given seed.

    Args:
        seed: the generator's seed; the shipped file uses DEFAULT_SEED.

    Example:
        >>> [f.category for f in generate_facts()][-1]
        'units'
    """
    rng = random.Random(seed)
    facts: list[Fact] = []
    sections = (
        ("arithmetic", "arithmetic", _arithmetic(rng)),
        ("comparisons", "compnum", _comparisons(rng)),
        ("units", "unitconv", _units(rng)),
    )
    for category, prefix, items in sections:
        for i, (question, answer, near) in enumerate(items, start=1):
            wrong = _wrong_numbers(answer, near, rng)
            facts.append(Fact(f"{prefix}-{i:03d}", category, question, str(answer), tuple(wrong)))
    return facts


def render_facts(facts: list[Fact]) -> str:
    """JSONL text of the facts, one per line.

    Example:
        >>> render_facts([Fact("a-1", "a", "Q?", "x", ("y", "z"))])
        '{"id": "a-1", "category": "a", "question": "Q?", "answer": "x", "wrong": ["y", "z"]}\\n'
    """
    return "".join(json.dumps(f.to_dict(), ensure_ascii=False) + "\n" for f in facts)


def write_generated_facts(path: Path = GENERATED_FILE, seed: int = DEFAULT_SEED) -> int:
    """Rewrite the generated fact file atomically; returns the number of facts.

    Args:
        path: target file.
        seed: generator seed.

    Example:
        >>> write_generated_facts(Path("/tmp/facts_generated.jsonl"))  # doctest: +SKIP
        129
    """
    from interp.store.atomic import atomic_write_text

    facts = generate_facts(seed)
    atomic_write_text(path, render_facts(facts))
    return len(facts)


if __name__ == "__main__":
    print(f"wrote {write_generated_facts()} facts to {GENERATED_FILE}")
