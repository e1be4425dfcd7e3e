"""ActivationStore: safetensors shards + `manifest.json` + `examples.jsonl` in one folder.

Layout of `artifacts/<run>/activations/`:

    manifest.json          sites, positions, dims, model provenance, shard list, `complete`
    examples.jsonl         the Example records, in store order
    shard-00000.safetensors
        "<site>"           [rows, d] activations (one tensor per site)
        "example_index"    [rows] int64, index into examples.jsonl
        "position_code"    [rows] int64, index into manifest["positions"]
        "token_index"      [rows] int64, token of the row (-1: mean over several tokens)

Shards are written to a temp file and renamed; the manifest is rewritten
atomically after each shard (with each shard's size, row count and sha256),
so a killed run resumes from the last shard the manifest lists, and a resume
verifies every listed shard and recomputes the damaged ones
(`interp.store.writer.open_store`). Reading opens shards lazily (safetensors memory-maps
them) and returns only the site and position asked for.

Example:
    >>> store = ActivationStore("artifacts/demo/activations")  # doctest: +SKIP
    >>> X = store.get("blocks.12.hook_resid_post", "last_prompt")  # [n_examples, d_model]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import safe_open
from safetensors.numpy import save_file

from interp.errors import InputError, from_validation, json_type, parse_json, read_text
from interp.store.atomic import atomic_path, atomic_write_json
from interp.tasks.example import Example, read_examples

MANIFEST = "manifest.json"
EXAMPLES = "examples.jsonl"
FORMAT_VERSION = 1


#: what a damaged store's message tells the user to do
RESUME_ADVICE = "run the same `workbench cache` command again: a resume verifies every shard and recomputes bad ones"


class StoreError(InputError, RuntimeError):
    """A store that cannot be read or written as asked; the message names the file."""


class _ShardRecord(BaseModel):
    model_config = ConfigDict(extra="allow")
    file: str
    start: int = Field(ge=0)
    stop: int = Field(ge=0)
    rows: int = Field(ge=0)
    bytes: int = Field(ge=0)
    sha256: str | None = None


class _Manifest(BaseModel):
    """The fields a reader relies on; the rest (provenance) is free."""

    model_config = ConfigDict(extra="allow")
    sites: list[str]
    positions: list[str]
    dims: dict[str, int]
    shards: list[_ShardRecord]
    n_examples: int = Field(ge=0)
    shard_size: int = Field(ge=1)
    complete: bool


@dataclass(frozen=True)
class TokenRows:
    """Rows of a per-token position (`all`)."""

    acts: np.ndarray  # [rows, d]
    example_index: np.ndarray  # [rows]
    token_index: np.ndarray  # [rows]


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.safetensors"


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_shard(path: Path, tensors: dict[str, np.ndarray]) -> tuple[int, str]:
    """Write a shard atomically; return its size in bytes and its sha256."""
    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
        digest = file_sha256(tmp)
    return path.stat().st_size, digest


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The store's manifest, None when the folder has none; a StoreError naming the field when it is bad."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = parse_json(read_text(path, "store manifest"), path)
    except InputError as e:
        raise StoreError(f"{e}; {RESUME_ADVICE} with --overwrite") from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{path}: the manifest is JSON {json_type(manifest)}, expected an object; "
                         f"{RESUME_ADVICE} with --overwrite")
    try:
        _Manifest.model_validate(manifest)
    except ValidationError as e:
        raise StoreError(f"{from_validation(e, path, 'manifest')}; {RESUME_ADVICE} with --overwrite") from None
    return manifest


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(folder / MANIFEST, manifest)


def _check_coverage(folder: Path, manifest: dict[str, Any]) -> None:
    """A complete store's shards must cover its examples exactly once, else rows would read as NaN."""
    covered = 0
    for shard in sorted(manifest["shards"], key=lambda s: int(s["start"])):
        if int(shard["start"]) != covered or int(shard["stop"]) <= covered:
            break
        covered = int(shard["stop"])
    if covered != int(manifest["n_examples"]):
        raise StoreError(f"{folder / MANIFEST}: marked complete but its shards cover examples 0:{covered} of "
                         f"{manifest['n_examples']}; {RESUME_ADVICE}")


class ActivationStore:
    """Read access to a finished (or, with `allow_incomplete`, partial) store."""

    def __init__(self, path: str | Path, allow_incomplete: bool = False) -> None:
        self.path = Path(path)
        manifest = read_manifest(self.path)
        if manifest is None:
            raise StoreError(f"{self.path}: no {MANIFEST}; is this an activation store?")
        if not manifest["complete"] and not allow_incomplete:
            done = sum(s["stop"] - s["start"] for s in manifest["shards"])
            raise StoreError(
                f"{self.path}: incomplete store ({done}/{manifest['n_examples']} examples); "
                "run the same `workbench cache` command again to resume it"
            )
        if manifest["complete"]:
            _check_coverage(self.path, manifest)
        self.manifest = manifest

    @property
    def sites(self) -> list[str]:
        return list(self.manifest["sites"])

    @property
    def positions(self) -> list[str]:
        return list(self.manifest["positions"])

    @property
    def model(self) -> dict[str, Any]:
        return dict(self.manifest.get("model", {}))

    @property
    def model_hash(self) -> str:
        return str(self.model.get("weights_hash", ""))

    @property
    def d_model(self) -> int:
        return int(self.model.get("d_model", 0))

    def dim(self, site: str) -> int:
        return int(self.manifest["dims"][site])

    @property
    def n_examples(self) -> int:
        return int(self.manifest["n_examples"])

    @cached_property
    def examples(self) -> list[Example]:
        return read_examples(self.path / EXAMPLES)

    def _check(self, site: str, position: str) -> int:
        if site not in self.manifest["sites"]:
            raise StoreError(f"{self.path}: site {site!r} not cached; the store holds {', '.join(self.sites)}")
        if position not in self.manifest["positions"]:
            raise StoreError(
                f"{self.path}: position {position!r} not cached; the store holds {', '.join(self.positions)}"
            )
        return self.manifest["positions"].index(position)

    def _shards(self) -> list[dict[str, Any]]:
        return list(self.manifest["shards"])

    def _open(self, shard: dict[str, Any]) -> Any:
        path = self.path / shard["file"]
        if not path.is_file():
            raise StoreError(f"{path}: shard listed in {MANIFEST} is missing")
        if path.stat().st_size != shard["bytes"]:
            raise StoreError(
                f"{path}: corrupt shard ({path.stat().st_size} bytes, manifest says {shard['bytes']}); {RESUME_ADVICE}"
            )
        try:
            return safe_open(str(path), framework="np")
        except Exception as e:  # safetensors raises its own error type for a bad header
            raise StoreError(f"{path}: corrupt shard ({e}); {RESUME_ADVICE}") from None

    def _rows(self, site: str, code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        acts, ex_idx, tok_idx = [], [], []
        for shard in self._shards():
            f = self._open(shard)
            try:
                keep = f.get_tensor("position_code") == code
                acts.append(f.get_tensor(site)[keep])
                ex_idx.append(f.get_tensor("example_index")[keep])
                tok_idx.append(f.get_tensor("token_index")[keep])
            except Exception as e:
                raise StoreError(f"{self.path / shard['file']}: corrupt shard ({e}); {RESUME_ADVICE}") from None
        if not acts:
            d = self.dim(site)
            empty = np.zeros((0,), dtype=np.int64)
            return np.zeros((0, d), dtype=np.float32), empty, empty
        return np.concatenate(acts), np.concatenate(ex_idx), np.concatenate(tok_idx)

    def get(self, site: str, position: str) -> np.ndarray:
        """Activations `[n_examples, d]` of a one-row position, in example order.

        Rows of examples the position does not apply to (`user_claim` on a
        neutral prompt, `answer` without an answer prefix) are NaN; see `has`.
        """
        code = self._check(site, position)
        if position == "all":
            raise StoreError("position 'all' has one row per token: use get_tokens()")
        acts, ex_idx, _ = self._rows(site, code)
        out = np.full((self.n_examples, acts.shape[1]), np.nan, dtype=acts.dtype)
        out[ex_idx] = acts
        return out

    def has(self, position: str) -> np.ndarray:
        """[n_examples] bool: which examples have a row at `position`."""
        code = self._check(position=position, site=self.sites[0])
        mask = np.zeros(self.n_examples, dtype=bool)
        for shard in self._shards():
            f = self._open(shard)
            mask[f.get_tensor("example_index")[f.get_tensor("position_code") == code]] = True
        return mask

    def get_tokens(self, site: str, position: str = "all") -> TokenRows:
        """Every row of a per-token position with its example and token index."""
        code = self._check(site, position)
        acts, ex_idx, tok_idx = self._rows(site, code)
        order = np.lexsort((tok_idx, ex_idx))
        return TokenRows(acts[order], ex_idx[order], tok_idx[order])
