"""`InputError`: outside data the workbench refuses, named the way a user can find and fix it.

Every boundary where data enters (data files, prompt files, vectors, gates,
GGUFs, activation stores, CLI numbers and paths) raises an `InputError` that
names the file, the record or line (1-based, as an editor counts), the field
and what was expected. The CLI prints it as one line and exits with status 2.

Example:
    >>> str(InputError("not a number", path="d.jsonl", line=3, field="correct", expected="an integer"))
    "d.jsonl, line 3: field 'correct': not a number (expected an integer)"
    >>> parse_json('{"a": [1, 2]}', "x.json")
    {'a': [1, 2]}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

#: the largest text file the workbench reads whole (data, prompts, manifests, configs)
MAX_INPUT_BYTES = 512 * 1024 * 1024


class InputError(ValueError):
    """Bad outside data; `str()` is one line naming path, line or record, field and what was expected.

    Args:
        message: what is wrong.
        path: the file (or option, e.g. "--strength") the data came from.
        line: 1-based line of a text file.
        record: 1-based record of a JSON array (or shard of a store).
        field: the field (key, tensor, option) that is wrong.
        expected: what would have been accepted.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 record: int | None = None, field: str | None = None, expected: str | None = None) -> None:
        self.message, self.path, self.line, self.record = message, path, line, record
        self.field, self.expected = field, expected
        super().__init__(self._text())

    def _text(self) -> str:
        where = [] if self.path is None else [str(self.path)]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.record is not None:
            where.append(f"record {self.record}")
        text = self.message if self.field is None else f"field {self.field!r}: {self.message}"
        if self.expected:
            text += f" (expected {self.expected})"
        return f"{', '.join(where)}: {text}" if where else text

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (Ray ships errors between processes)
        return (_rebuild, (type(self), self.message, self.path, self.line, self.record, self.field, self.expected))


def _rebuild(cls: type[InputError], message: str, path: Any, line: Any, record: Any, field: Any,
             expected: Any) -> InputError:
    return cls(message, path=path, line=line, record=record, field=field, expected=expected)


class MissingFileError(InputError, FileNotFoundError):
    """An input file that is not there (also a FileNotFoundError, for callers that catch that)."""


def parse_json(text: str | bytes, path: str | Path, line: int | None = None, field: str | None = None) -> Any:
    """`json.loads(text)`, failing with an InputError that names the file and the 1-based line.

    Args:
        text: the JSON text.
        path: where it came from (shown in the message).
        line: the line `text` starts on, for one line of a JSONL file (None: count inside `text`).
        field: the key it was stored under (e.g. a metadata key), if any.

    Example:
        >>> parse_json("[1]", "f.json")
        [1]
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        at = line if line is not None else e.lineno
        raise InputError(f"not valid JSON ({e.msg} at column {e.colno})", path=path, line=at, field=field) from None
    except RecursionError:
        raise InputError("JSON nested too deeply to read", path=path, line=line, field=field,
                         expected="at most a few hundred levels of nesting") from None


def read_text(path: str | Path, what: str, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of a file, or an InputError saying why it cannot be read.

    Args:
        path: the file.
        what: what it should be ("prompts file", "config"), for the message.
        max_bytes: refuse larger files.

    Example:
        >>> read_text("missing.txt", "prompts file")  # doctest: +SKIP
        Traceback (most recent call last):
        interp.errors.InputError: missing.txt: no such prompts file
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"is a folder, expected a {what}", path=path)
    if not path.is_file():
        raise InputError(f"no such {what}", path=path)
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(f"{what} of {size} bytes is too large", path=path, expected=f"at most {max_bytes} bytes")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte {e.start})", path=path) from None
    except OSError as e:
        raise InputError(f"cannot read ({e.strerror or e})", path=path) from None


def editor_lines(text: str) -> list[str]:
    """`text` split into lines the way an editor numbers them: at \\n, \\r\\n or \\r only.

    `str.splitlines` also splits at form feeds, \\x1c-\\x1e, \\x85 and U+2028/2029,
    which would shift every line number after such a character.

    Example:
        >>> editor_lines("a\\u2028b\\r\\nc")
        ['a\\u2028b', 'c']
    """
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages ("null", "array", "object", ...).

    Example:
        >>> json_type(None), json_type([1]), json_type("x")
        ('null', 'array', 'string')
    """
    names = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string", list: "array",
             dict: "object"}
    return names.get(type(value), type(value).__name__)


def check_count(option: str, value: int | None, minimum: int = 1) -> int | None:
    """`value` if it is None or >= `minimum`, else an InputError naming the option.

    Example:
        >>> check_count("--n", 3)
        3
    """
    if value is not None and value < minimum:
        raise InputError(f"{value} is out of range", path=option, expected=f"an integer >= {minimum}")
    return value


def check_finite(option: str, value: float | None) -> float | None:
    """`value` if it is None or a finite number, else an InputError naming the option.

    Example:
        >>> check_finite("--strength", 2.0)
        2.0
    """
    if value is not None and not math.isfinite(value):
        raise InputError(f"{value} is not a finite number", path=option, expected="a finite number")
    return value


def from_validation(error: Any, path: str | Path, what: str) -> InputError:
    """An InputError from a pydantic `ValidationError`: its first problem, with the field path.

    Args:
        error: the `pydantic.ValidationError`.
        path: the file that held the data.
        what: what the data is ("vector header", "manifest"), for the message.
    """
    first = error.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or None
    return InputError(f"{first.get('msg', 'invalid')} in the {what}", path=path, field=field)


__all__ = ["MAX_INPUT_BYTES", "InputError", "MissingFileError", "check_count", "check_finite", "editor_lines", "json_type", "from_validation", "parse_json", "read_text"]
