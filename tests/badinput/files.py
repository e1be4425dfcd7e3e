"""Writers of bad files: damaged copies of good ones, and files with one field wrong.

Each returns the path it wrote, so a case reads `files.vector_without(ws, folder, "method")`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFWriter
from safetensors import safe_open
from safetensors.numpy import save_file

#: deeper than Python's JSON decoder can recurse
DEEP = "[" * 100_000 + "]" * 100_000


def lines(path: Path, rows: list[str], newline: str = "\n") -> Path:
    """A text file of `rows` joined by `newline`."""
    path.write_bytes(newline.join(rows).encode("utf-8") + newline.encode())
    return path


def good_record(i: int = 0, **changes: Any) -> dict[str, Any]:
    """An Example record that validates, with `changes` applied (None deletes a key)."""
    record: dict[str, Any] = {"id": f"r{i}", "pair_id": f"p{i}", "task": "answer", "condition": "neutral",
                              "turns": [{"role": "user", "content": f"What is {i} plus 1?"}],
                              "choices": [str(i + 1), str(i + 2)], "correct": 0}
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    return record


def data_with(folder: Path, bad: str, at: int = 3, name: str = "data.jsonl") -> Path:
    """A JSONL of good records with `bad` as line `at` (1-based)."""
    rows = [json.dumps(good_record(i)) for i in range(1, at)] + [bad] + [json.dumps(good_record(99))]
    return lines(folder / name, rows)


def header_of(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A tagged safetensors file's `workbench` header and tensors."""
    with safe_open(str(path), framework="np") as f:
        header = json.loads((f.metadata() or {})["workbench"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return header, tensors


def retagged(source: Path, out: Path, header: Any = None, tensors: dict[str, np.ndarray] | None = None,
             raw: str | None = None) -> Path:
    """`source` rewritten with another header (or raw metadata text) and/or tensors."""
    old_header, old_tensors = header_of(source)
    meta = {"workbench": raw if raw is not None else json.dumps(old_header if header is None else header)}
    save_file(old_tensors if tensors is None else tensors, str(out), metadata=meta)
    return out


def without(source: Path, out: Path, field: str) -> Path:
    """`source` with one header field removed."""
    header, _ = header_of(source)
    del header[field]
    return retagged(source, out, header=header)


def with_field(source: Path, out: Path, field: str, value: Any) -> Path:
    """`source` with one header field set to `value`."""
    header, _ = header_of(source)
    header[field] = value
    return retagged(source, out, header=header)


def truncated(source: Path, out: Path, keep: int) -> Path:
    """The first `keep` bytes of `source` (negative: all but the last -keep)."""
    data = source.read_bytes()
    out.write_bytes(data[:keep])
    return out


def gguf(out: Path, *, arch: str = "controlvector", hint: str | None = "llama", count: int | None = None,
         export: str | None = None, tensors: dict[str, np.ndarray] | None = None) -> Path:
    """A GGUF control vector with chosen keys (defaults: a valid one with direction.1..3 of width 64)."""
    tensors = tensors if tensors is not None else {f"direction.{i}": np.ones(64, np.float32) for i in (1, 2, 3)}
    writer = GGUFWriter(str(out), arch)
    if hint is not None:
        writer.add_string("controlvector.model_hint", hint)
    writer.add_uint32("controlvector.layer_count", len(tensors) if count is None else count)
    if export is not None:
        writer.add_string("workbench.export", export)
    for name, value in tensors.items():
        writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
