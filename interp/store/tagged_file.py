"""safetensors files whose metadata carries JSON records: written atomically, read with named errors.

The workbench's small artifacts (steering vectors, probe gates, native exports)
are one safetensors file each: numpy tensors plus JSON records under metadata
keys (e.g. `"workbench"` for the object's header). This module is their one
writer and reader, so every such file fails the same way on bad input.

Every kind of file carries one format tag, `workbench.<kind>/<version>` (`format_tag`), checked by
`check_format`; a reader also accepts the older tags of files already on disk.

Example:
    >>> import numpy as np, tempfile
    >>> from pathlib import Path
    >>> p = write_tagged(Path(tempfile.mkdtemp()) / "x.safetensors", {"v": np.ones(2, np.float32)}, {"workbench": {"a": 1}})
    >>> records, tensors = read_tagged(p, "example")
    >>> records["workbench"], tensors["v"].tolist()
    ({'a': 1}, [1.0, 1.0])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError
from safetensors import safe_open
from safetensors.numpy import save_file

from interp.errors import InputError, MissingFileError, from_validation
from interp.store.atomic import atomic_path

M = TypeVar("M", bound=BaseModel)


def write_tagged(path: str | Path, tensors: dict[str, np.ndarray], records: dict[str, Any]) -> Path:
    """Write `tensors` with each record JSON-encoded (sorted keys) under its metadata key; atomic.

    Args:
        path: the output file (its folder is created).
        tensors: name -> array.
        records: metadata key -> a JSON-able value.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: json.dumps(v, sort_keys=True) for k, v in records.items()})
        _sort_metadata(tmp)
    return path


def _sort_metadata(path: Path) -> None:
    """Rewrite the header's `__metadata__` in sorted key order, in place (same length).

    The safetensors library keeps metadata in a hash map, so with several keys their
    order (and the file's bytes) changes from process to process; sorted, the same
    content always gives the same bytes.
    """
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        raw = f.read(n)
        header = json.loads(raw)
        if "__metadata__" in header:
            header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(text) <= n:
            f.seek(8)
            f.write(text + b" " * (n - len(text)))


def read_tagged(path: str | Path, what: str, load_tensors: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON records of the file's metadata and (unless `load_tensors` is False) its tensors.

    Metadata values that are not JSON are returned as the raw strings.

    Args:
        path: the file.
        what: what the file should be (e.g. "vector", "gate"), for the error messages.
        load_tensors: read the tensors too (False: metadata only).

    Raises:
        MissingFileError: no such file (a FileNotFoundError too).
        InputError: not a safetensors file, or metadata JSON nested too deeply.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no such {what} file" if not path.exists() else f"is not a {what} file", path=path)
    try:
        with safe_open(str(path), framework="np") as f:
            raw = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()} if load_tensors else {}
    except Exception as e:  # safetensors' own error type for a bad header
        raise InputError(f"not a safetensors {what} file ({' '.join(str(e).split())})", path=path) from None
    records: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            records[key] = json.loads(value)
        except json.JSONDecodeError:
            records[key] = value
        except RecursionError:
            raise InputError("metadata JSON nested too deeply to read", path=path, field=key) from None
    return records, tensors


def read_workbench_file(
    path: str | Path, kind: str, what: str, expected: str, header: type[M], legacy: tuple[str, ...] = ()
) -> tuple[M, dict[str, np.ndarray]]:
    """A workbench file's validated `workbench` header and its tensors: the one reader of the vector, low-rank
    edit and gate files (each passes its pydantic header model and format tag).

    Args:
        path: the file.
        kind: its short name ("vector"), for the messages about the file itself.
        what: what it should be ("workbench steering vector"), for the messages about its header.
        expected: `format_tag(kind, version)` of the reader.
        header: the pydantic model the header validates against.
        legacy: older format tags still read.

    Raises:
        InputError: not a safetensors file, no `workbench` metadata, another format, or a bad header field
            (named with its path).
    """
    records, tensors = read_tagged(path, kind)
    record = records.get("workbench")
    if not isinstance(record, dict):
        raise InputError(f"no 'workbench' metadata; not a {what}", path=path)
    check_format(path, record.get("format"), expected, what, legacy)
    try:
        return header.model_validate(record), tensors
    except ValidationError as e:
        raise from_validation(e, path, f"{kind} header") from None


def format_tag(kind: str, version: int) -> str:
    """The one format-tag scheme of the workbench's files: `workbench.<kind>/<version>`.

    Example:
        >>> format_tag("steering_vector", 1)
        'workbench.steering_vector/1'
    """
    return f"workbench.{kind}/{version}"


def check_format(path: str | Path, found: Any, expected: str, what: str, legacy: tuple[str, ...] = ()) -> None:
    """Raise an InputError (a ValueError) naming both tags unless `found` is `expected` or one of its `legacy` tags.

    Args:
        path: the file, for the message.
        found: the tag the file carries.
        expected: `format_tag(kind, version)` of the reader.
        what: what the file should be (e.g. "directions"), for the message.
        legacy: older tags of the same format, still read.

    Example:
        >>> check_format("g.safetensors", "workbench-probe-gate/1", "workbench.probe_gate/1", "gate",
        ...              legacy=("workbench-probe-gate/1",))
    """
    if found != expected and found not in legacy:
        raise InputError(f"is {found!r}, not a {what} file", path=path, field="format", expected=repr(expected))
