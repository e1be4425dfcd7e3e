"""The `Example` record every task produces and every stage consumes.

An example is a chat (a list of turns) plus what is needed to score it and to
group it: the task and condition it belongs to, the `pair_id` shared by every
variant of one question, the answer choices with the correct and the
sycophantic one marked, and the substring of the last user turn that states
the user's opinion (for the `user_claim` position).

Example:
    >>> ex = Example(id="q1/neutral", pair_id="q1", task="answer", condition="neutral",
    ...              turns=(Turn("user", "What is 2+2?"),), choices=("4", "5"), correct=0)
    >>> ex.last_user_text
    'What is 2+2?'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from interp.errors import MAX_INPUT_BYTES, InputError, editor_lines, json_type

ROLES = ("system", "user", "assistant")


class ExampleFormatError(InputError):
    """A record that is not a valid Example; the message names file, line and field."""


def check_text(text: str, what: str) -> None:
    """Refuse a string that cannot be written as UTF-8 (a lone surrogate such as JSON's "\\ud800").

    Example:
        >>> check_text("fine", "content")
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{what} holds an invalid character at position {e.start} (a lone surrogate)") from None


@dataclass(frozen=True)
class Turn:
    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        if not isinstance(self.content, str):
            raise ValueError(f"content must be a string, got JSON {json_type(self.content)}")
        check_text(self.content, "content")


@dataclass(frozen=True)
class Example:
    """One prompt of a task.

    Args:
        id: unique id of the record.
        pair_id: id shared by all variants of one question; splits group by it.
        task: `answer`, `are_you_sure`, `feedback`, `mimicry`, `caa`, `arc`, `demo`, ...
        condition: the variant, e.g. `neutral`, `user_wrong`, `user_right`,
            `user_doubts_right`, `third_party_wrong`, `sycophantic`, `honest`.
        turns: the chat so far; the model answers after the last turn.
        choices: answer texts (or letters) to score; may be empty.
        correct: index into `choices` of the correct answer, if any.
        sycophantic: index into `choices` of the answer the user pushes, if any.
        user_claim: substring of the last user turn stating the opinion; the
            `user_claim` position is the mean over its tokens.
        answer: text that starts the assistant's reply (e.g. "(A"); the
            `answer` position is its last token.
        meta: free-form JSON-serialisable details (category, quality, ...).
    """

    id: str
    pair_id: str
    task: str
    condition: str
    turns: tuple[Turn, ...]
    choices: tuple[str, ...] = ()
    correct: int | None = None
    sycophantic: int | None = None
    user_claim: str | None = None
    answer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    def __post_init__(self) -> None:
        for name in ("id", "pair_id", "task", "condition"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"field {name!r} must be a non-empty string, got {value!r}")
        if not self.turns:
            raise ValueError("field 'turns' must hold at least one turn")
        for name in ("correct", "sycophantic"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and 0 <= value < len(self.choices)):
                raise ValueError(
                    f"field {name!r} must index into choices (0..{len(self.choices) - 1}), got {value!r}"
                )
        for name in ("user_claim", "answer"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"field {name!r} must be a string or absent, got {value!r}")
        if not all(isinstance(c, str) for c in self.choices):
            raise ValueError("field 'choices' must be a list of strings")
        for i, c in enumerate(self.choices):
            check_text(c, f"field 'choices[{i}]'")
        for name in ("id", "pair_id", "user_claim", "answer"):
            if getattr(self, name) is not None:
                check_text(getattr(self, name), f"field {name!r}")
        if not isinstance(self.meta, dict):
            raise ValueError(f"field 'meta' must be a JSON object, got JSON {json_type(self.meta)}")
        if self.user_claim is not None and self.user_claim not in self.last_user_text:
            raise ValueError("field 'user_claim' must be a substring of the last user turn")

    @property
    def last_user_text(self) -> str:
        for turn in reversed(self.turns):
            if turn.role == "user":
                return turn.content
        return ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["turns"] = [asdict(t) for t in self.turns]
        d["choices"] = list(self.choices)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Example:
        if not isinstance(d, dict):
            raise ValueError(f"record must be a JSON object, got JSON {json_type(d)}")
        missing = [k for k in ("id", "pair_id", "task", "condition", "turns") if k not in d]
        if missing:
            raise ValueError(f"missing field {missing[0]!r}")
        turns_raw = d["turns"]
        if not isinstance(turns_raw, list):
            raise ValueError("field 'turns' must be a list of {role, content} objects")
        turns = []
        for i, t in enumerate(turns_raw):
            if not isinstance(t, dict) or "role" not in t or "content" not in t:
                raise ValueError(f"field 'turns[{i}]' must be an object with 'role' and 'content'")
            try:
                turns.append(Turn(t["role"], t["content"]))
            except ValueError as e:
                raise ValueError(f"field 'turns[{i}]': {e}") from None
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}")
        choices = d.get("choices", [])
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise ValueError("field 'choices' must be a list of strings")
        return cls(
            id=d["id"],
            pair_id=d["pair_id"],
            task=d["task"],
            condition=d["condition"],
            turns=tuple(turns),
            choices=tuple(choices),
            correct=d.get("correct"),
            sycophantic=d.get("sycophantic"),
            user_claim=d.get("user_claim"),
            answer=d.get("answer"),
            meta=d.get("meta") or {},
        )


def read_examples(path: str | Path) -> list[Example]:
    """Read and validate a JSONL file of examples, failing on the first bad line.

    Raises:
        ExampleFormatError: naming the file, the 1-based line and the field.
    """
    path = Path(path)
    if path.is_dir():
        raise ExampleFormatError(f"{path}: is a folder, expected a JSONL file of examples")
    if not path.is_file():
        raise ExampleFormatError(f"{path}: no such file")
    if path.stat().st_size > MAX_INPUT_BYTES:
        raise ExampleFormatError(f"{path}: {path.stat().st_size} bytes is too large (at most {MAX_INPUT_BYTES})")
    examples: list[Example] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(_editor_lines(f), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ExampleFormatError(f"{path}, line {lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            except RecursionError:
                raise ExampleFormatError(f"{path}, line {lineno}: JSON nested too deeply to read") from None
            except UnicodeDecodeError as e:
                raise ExampleFormatError(f"{path}, line {lineno}: not UTF-8 text ({e.reason})") from None
            try:
                ex = Example.from_dict(record)
            except (ValueError, TypeError, RecursionError) as e:
                raise ExampleFormatError(f"{path}, line {lineno}: {e}") from None
            if ex.id in seen:
                raise ExampleFormatError(
                    f"{path}, line {lineno}: field 'id' {ex.id!r} repeats line {seen[ex.id]}"
                )
            seen[ex.id] = lineno
            examples.append(ex)
    if not examples:
        raise ExampleFormatError(f"{path}: holds no records")
    return examples


def _editor_lines(f: Any) -> Iterable[str]:
    """Lines split the way an editor counts them (\\n, \\r\\n or \\r), not on every Unicode separator."""
    try:
        text = f.read()
    except UnicodeDecodeError as e:
        raise ExampleFormatError(f"{f.name}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    return editor_lines(text)


def write_examples(examples: Iterable[Example], path: str | Path) -> None:
    """Write examples as JSONL, atomically."""
    from interp.store.atomic import atomic_write_text

    text = "".join(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n" for ex in examples)
    atomic_write_text(Path(path), text)


def with_system_prompt(example: Example, text: str) -> Example:
    """The example with `text` as its system turn (replacing one it had; its other turns unchanged).

    Example:
        >>> ex = Example("a", "p", "answer", "neutral", (Turn("user", "Q?"),), ("x", "y"), correct=0)
        >>> [t.role for t in with_system_prompt(ex, "Be honest.").turns]
        ['system', 'user']
    """
    rest = example.turns[1:] if example.turns and example.turns[0].role == "system" else example.turns
    return replace(example, turns=(Turn("system", text), *rest))
