"""Resolve a `--data` argument (built-in task name, Example JSONL, or an external file)."""

from __future__ import annotations

from interp.errors import InputError
from interp.tasks import resolve_dataset
from interp.tasks.example import Example


def resolve_examples(spec: str, limit: int | None = None, format: str | None = None) -> list[Example]:
    """`interp.tasks.resolve_dataset`, keeping the first `limit` examples."""
    if limit is not None and limit < 1:
        raise InputError(f"{limit} is out of range", path="--limit", expected="an integer >= 1")
    examples = resolve_dataset(spec, format=format)
    return examples[:limit] if limit else examples


def task_examples(task: str, n: int | None, seed: int) -> list[Example]:
    """A built-in task with at most `n` questions (texts): all of a task that has fewer."""
    from interp.tasks import build_task

    if n is None:
        return build_task(task, seed=seed)
    if n < 1:
        raise InputError(f"{n} is out of range", path="--n", expected="an integer >= 1")
    available = len({ex.pair_id for ex in build_task(task, seed=seed)})
    return build_task(task, n=min(n, available), seed=seed)
