"""Reading JSON records with their location, for loaders that must say where input is wrong.

Every record comes with a `Location` ("data.jsonl, line 3" or "data.json,
record 2 (index 1)") and the field helpers raise `ExternalFormatError` naming
that location and the field.

Example:
    >>> loc = Location("data.jsonl", "line", 3)
    >>> str(loc)
    'data.jsonl, line 3'
    >>> get_str({"question": "Q?"}, "question", loc)
    'Q?'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from interp.errors import MAX_INPUT_BYTES, editor_lines, json_type
from interp.tasks.example import ExampleFormatError

#: where the task generators' own data files live (package data, read through importlib.resources)
PACKAGE_DATA = "interp/tasks/data"
T = TypeVar("T")


class RecordFormatError(ExampleFormatError):
    """A JSON record that does not match its format; the message names file, line or record, and field."""


class ExternalFormatError(RecordFormatError):
    """An external dataset file (CAA, Anthropic evals, SycophancyEval, ARC) that does not match its format."""


class TaskDataError(RecordFormatError):
    """A data file shipped with the task generators (feedback, mimicry) that is not valid."""


@dataclass(frozen=True)
class Location:
    """Where a record sits: `kind` is "line" (JSONL, 1-based) or "record" (JSON array, 1-based).

    Args:
        path: the file, as shown in messages.
        kind: "line" or "record".
        number: 1-based line or record number.
        error_type: the exception class `error` builds.

    Example:
        >>> str(Location("a.json", "record", 1))
        'a.json, record 1 (index 0)'
    """

    path: str
    kind: str
    number: int
    error_type: type[RecordFormatError] = ExternalFormatError

    def __str__(self) -> str:
        if self.kind == "record":
            return f"{self.path}, record {self.number} (index {self.number - 1})"
        return f"{self.path}, {self.kind} {self.number}"

    def error(self, message: str) -> RecordFormatError:
        """An exception of `error_type` prefixed with this location."""
        return self.error_type(f"{self}: {message}")


def _read_text(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise ExternalFormatError(f"{path}: no such file")
    if path.stat().st_size > MAX_INPUT_BYTES:
        raise ExternalFormatError(f"{path}: {path.stat().st_size} bytes is too large (at most {MAX_INPUT_BYTES})")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ExternalFormatError(f"{path}: cannot read ({e})") from None


def iter_jsonl(
    path: str | Path,
    text: str | None = None,
    error_type: type[RecordFormatError] = ExternalFormatError,
) -> Iterator[tuple[Location, Any]]:
    """Yield (location, decoded record) for each non-blank line of a JSONL file.

    Args:
        path: the file (also the name shown in messages).
        text: the content, if already read (e.g. package data); else read from `path`.
        error_type: the exception class raised.

    Raises:
        ExternalFormatError: (or `error_type`) on a missing file, a line that
            is not JSON, or no records.

    Example:
        >>> [rec for _, rec in iter_jsonl("x.jsonl", text='{"a": 1}\\n')]
        [{'a': 1}]
    """
    if text is None:
        text = _read_text(path)
    count = 0
    for lineno, line in enumerate(editor_lines(text), start=1):
        if not line.strip():
            continue
        loc = Location(str(path), "line", lineno, error_type)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise loc.error(f"not valid JSON ({e.msg} at column {e.colno})") from None
        except RecursionError:
            raise loc.error("JSON nested too deeply to read") from None
        count += 1
        yield loc, record
    if count == 0:
        raise error_type(f"{path}: holds no records")


def read_package_text(name: str) -> tuple[str, str]:
    """(the name messages show, the text) of a data file shipped with the task generators in `PACKAGE_DATA`.

    Example:
        >>> label, text = read_package_text("feedback.jsonl")
        >>> label, text.startswith("{")
        ('interp/tasks/data/feedback.jsonl', True)
    """
    return f"{PACKAGE_DATA}/{name}", (files("interp.tasks") / "data" / name).read_text("utf-8")


def load_package_jsonl(name: str, make: Callable[..., T], fields: tuple[str, ...],
                       check: Callable[[T], str | None]) -> tuple[T, ...]:
    """The records of a JSONL file shipped in `PACKAGE_DATA`, validated: one `make(*values)` per line.

    Every field is a required non-empty string, passed to `make` in the order of `fields`; the first field is
    the record's id and may not repeat.

    Args:
        name: the file under `PACKAGE_DATA` (e.g. "feedback.jsonl").
        make: builds one record from the field values (a dataclass).
        fields: the field names, in `make`'s argument order, the id first.
        check: what is wrong with a built record (a message naming the field), or None when it is fine.

    Raises:
        TaskDataError: naming the file, line and field of a bad record.

    Example:
        >>> items = load_package_jsonl("mimicry.jsonl", lambda *v: v, ("id", "kind", "subject", "person", "wrong"),
        ...                            lambda v: None)
        >>> len(items[0])
        5
    """
    label, text = read_package_text(name)
    items: list[T] = []
    seen: set[str] = set()
    for loc, raw in iter_jsonl(label, text=text, error_type=TaskDataError):
        record = require_object(raw, loc)
        values = [get_str(record, field, loc) for field in fields]
        item = make(*values)
        problem = check(item)
        if problem is not None:
            raise loc.error(problem)
        if values[0] in seen:
            raise loc.error(f"field {fields[0]!r} {values[0]!r} repeats")
        seen.add(values[0])
        items.append(item)
    return tuple(items)


def iter_json_array(path: str | Path) -> Iterator[tuple[Location, Any]]:
    """Yield (location, record) for each element of a file holding one JSON array.

    Raises:
        ExternalFormatError: on a missing file, invalid JSON (with its line),
            a top level that is not an array, or an empty array.

    Example:
        >>> records = list(iter_json_array("caa.json"))  # doctest: +SKIP
    """
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        hint = "; expected one JSON array, this looks like JSONL" if e.msg == "Extra data" else ""
        raise ExternalFormatError(
            f"{path}, line {e.lineno}: not valid JSON ({e.msg} at column {e.colno}){hint}"
        ) from None
    except RecursionError:
        raise ExternalFormatError(f"{path}: JSON nested too deeply to read") from None
    if not isinstance(data, list):
        raise ExternalFormatError(f"{path}: top level must be a JSON array, got JSON {json_type(data)}")
    if not data:
        raise ExternalFormatError(f"{path}: holds no records")
    for i, record in enumerate(data, start=1):
        yield Location(str(path), "record", i), record


def require_object(record: Any, loc: Location) -> dict[str, Any]:
    """The record as a dict, or an error naming its location.

    Example:
        >>> require_object({"a": 1}, Location("f", "line", 1))
        {'a': 1}
    """
    if not isinstance(record, dict):
        raise loc.error(f"record must be a JSON object, got JSON {json_type(record)}")
    return record


def get_field(record: dict[str, Any], name: str, loc: Location) -> Any:
    """`record[name]`, or an error naming the missing field.

    Example:
        >>> get_field({"a": 1}, "a", Location("f", "line", 1))
        1
    """
    if name not in record:
        raise loc.error(f"missing field {name!r}")
    return record[name]


def get_str(record: dict[str, Any], name: str, loc: Location) -> str:
    """A required non-empty string field.

    Example:
        >>> get_str({"q": "x"}, "q", Location("f", "line", 1))
        'x'
    """
    value = get_field(record, name, loc)
    if not isinstance(value, str) or not value.strip():
        raise loc.error(f"field {name!r} must be a non-empty string, got {_show(value)}")
    return value


def get_str_list(record: dict[str, Any], name: str, loc: Location) -> list[str]:
    """A required field holding a string or a non-empty list of strings, as a list.

    Example:
        >>> get_str_list({"a": " (B)"}, "a", Location("f", "line", 1))
        [' (B)']
    """
    value = get_field(record, name, loc)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise loc.error(f"field {name!r} must be a string or a non-empty list of strings, got {_show(value)}")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise loc.error(f"field '{name}[{i}]' must be a non-empty string, got {_show(item)}")
    return list(items)


def get_object(record: dict[str, Any], name: str, loc: Location, required: bool) -> dict[str, Any]:
    """An object field; `{}` when optional and absent.

    Example:
        >>> get_object({}, "meta", Location("f", "line", 1), required=False)
        {}
    """
    if name not in record and not required:
        return {}
    value = get_field(record, name, loc)
    if not isinstance(value, dict):
        raise loc.error(f"field {name!r} must be a JSON object, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
