"""Writing an ActivationStore shard by shard: the manifest's bookkeeping, shared by every writer.

`interp.capture.collect.capture` (one process) and `interp.capture.distributed.capture_on_ray`
(Ray workers) write stores through these functions, so both follow one
protocol: the examples and an empty manifest first (`open_store`); each shard
written atomically and its record checked against the file
(`check_shard_record`) before the manifest lists it (`add_shard`); the store
marked complete only once every shard is listed and agrees with its file
(`commit`). A killed writer leaves at most a temp file, never a half shard.

A resume trusts nothing: `open_store` removes temp files (ours and the
safetensors library's own), restores a damaged `examples.jsonl`, and checks
every listed shard (file, size, header, row counts, sha256); a bad shard is
dropped from the manifest and recomputed, also in a store marked complete.

Example:
    >>> manifest = open_store(folder, examples, seed, overwrite=False)  # doctest: +SKIP
    >>> for shard in pending_shards(manifest):  # doctest: +SKIP
    ...     manifest = add_shard(folder, manifest, write_capture_shard(folder, shard, compute(shard)))
    >>> store = commit(folder, manifest)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from safetensors import safe_open

from interp.store.activations import (
    EXAMPLES,
    ActivationStore,
    StoreError,
    file_sha256,
    read_manifest,
    shard_name,
    write_manifest,
    write_shard,
)
from interp.tasks.example import Example, write_examples

#: temp files a killed writer can leave: ours (`.shard-00003.safetensors.x1y2.tmp`, `.manifest.json.x1y2.tmp`)
#: and the safetensors library's own (`.tmpAbC123`, written beside the target, then renamed)
_TEMP_FILE = re.compile(r"^\.(?:.+\.[^.]+\.tmp|tmp[A-Za-z0-9]{6})$")


def examples_hash(examples: list[Example]) -> str:
    """sha256 over the examples' JSON records, in order (a store's `data_hash`)."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps(ex.to_dict(), sort_keys=True).encode())
    return digest.hexdigest()


def remove_temp_files(folder: Path) -> list[Path]:
    """Delete the temp files a killed writer left in a store folder; return them."""
    removed = [p for p in folder.iterdir() if p.is_file() and _TEMP_FILE.match(p.name)]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


class ShardRange(NamedTuple):
    """Shard `index` holds examples `start:stop` (file `shard-{index:05d}.safetensors`)."""

    index: int  # type: ignore[assignment]  # the shard number; shadows tuple.index on purpose
    start: int
    stop: int


def open_store(
    folder: Path, examples: list[Example], seed: dict[str, object], overwrite: bool,
    log: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """The manifest to continue from: the existing one (same fingerprint), verified, or a fresh one written now.

    An existing store is checked shard by shard (`verify_shards`), marked complete or not; what is
    bad is dropped and left for the caller to recompute (`pending_shards`).

    Args:
        folder: the store folder.
        examples: the store's examples, in order.
        seed: `interp.capture.collect.manifest_seed(...)`, the manifest of an empty store.
        overwrite: replace a store made with another configuration.
        log: told about each repair (a removed temp file, a dropped shard).

    Raises:
        StoreError: a store with another fingerprint is here and `overwrite` is False.
    """
    existing = read_manifest(folder)
    if existing is not None and overwrite:
        shutil.rmtree(folder)
        existing = None
    if existing is not None:
        if existing.get("fingerprint") != seed["fingerprint"]:
            raise StoreError(
                f"{folder}: a store made with another configuration is already here "
                f"(model, data, sites, positions or batching differ); choose another run name or pass --overwrite"
            )
        _check_agrees(folder, existing, seed)
        return _repair(folder, examples, existing, log or (lambda message: None))
    folder.mkdir(parents=True, exist_ok=True)
    write_examples(examples, folder / EXAMPLES)
    manifest = dict(seed)
    write_manifest(folder, manifest)
    return manifest


#: manifest fields the fingerprint stands for: a manifest that disagrees with them was damaged after it was written
_FINGERPRINTED = ("n_examples", "shard_size", "sites", "positions", "dims", "dtype", "batch_size", "padding_side")


def _check_agrees(folder: Path, manifest: dict[str, object], seed: dict[str, object]) -> None:
    for key in _FINGERPRINTED:
        if key in seed and manifest.get(key) != seed[key]:
            shown = str(manifest.get(key))[:60]
            raise StoreError(f"{folder / 'manifest.json'}: field {key!r} is {shown}, but the store's fingerprint says "
                             f"{str(seed[key])[:60]}: the manifest was edited or damaged; run the same command with "
                             "--overwrite to rebuild the store")


def _repair(folder: Path, examples: list[Example], manifest: dict[str, object],
            log: Callable[[str], None]) -> dict[str, object]:
    for tmp in remove_temp_files(folder):
        log(f"removed {tmp.name}, a temp file left by an interrupted write")
    path = folder / EXAMPLES
    try:
        intact = path.is_file() and path.read_bytes() == _examples_bytes(examples)
    except OSError:
        intact = False
    if not intact:
        log(f"rewrote {path.name}: it was missing or differed from the data")
        write_examples(examples, path)
    manifest, problems = verify_shards(folder, manifest)
    for problem in problems:
        log(f"{problem}: recomputing it")
    return manifest


def _examples_bytes(examples: list[Example]) -> bytes:
    return "".join(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n" for ex in examples).encode("utf-8")


def verify_shards(folder: Path, manifest: dict[str, object]) -> tuple[dict[str, object], list[str]]:
    """Check every shard the manifest lists; drop the records of bad ones and unmark completeness.

    Returns:
        The manifest (rewritten on disk when anything was dropped) and one message per dropped shard.

    Example:
        >>> manifest, problems = verify_shards(folder, read_manifest(folder))  # doctest: +SKIP
    """
    expected = {r.start: r for r in shard_ranges(int(manifest["n_examples"]), int(manifest["shard_size"]))}  # type: ignore[call-overload]
    keep, problems = [], []
    for record in manifest["shards"]:  # type: ignore[attr-defined]
        shard = expected.get(int(record["start"]))
        try:
            if shard is None:
                raise StoreError(f"{folder / str(record.get('file'))}: starts at {record['start']}, not a shard boundary")
            check_shard_record(folder, record, shard)
        except StoreError as e:  # the recomputed shard replaces the bad file atomically
            problems.append(str(e))
            continue
        keep.append(record)
    listed = {int(r["start"]) for r in keep}
    if problems or (manifest["complete"] and set(expected) - listed):
        if manifest["complete"] and set(expected) - listed and not problems:
            problems.append(f"{folder / 'manifest.json'}: marked complete with {len(set(expected) - listed)} "
                            "shards unlisted")
        manifest = {**manifest, "shards": keep, "complete": False}
        manifest.pop("finished", None)
        write_manifest(folder, manifest)
    return manifest, problems


def shard_ranges(n_examples: int, shard_size: int) -> list[ShardRange]:
    """Every shard of a store: `(index, start, stop)`.

    Example:
        >>> shard_ranges(5, 2)
        [ShardRange(index=0, start=0, stop=2), ShardRange(index=1, start=2, stop=4), ShardRange(index=2, start=4, stop=5)]
    """
    return [ShardRange(i, start, min(start + shard_size, n_examples))
            for i, start in enumerate(range(0, n_examples, shard_size))]


def pending_shards(manifest: dict[str, object]) -> list[ShardRange]:
    """Shards the manifest does not list yet (what a resume still has to compute)."""
    done = {int(s["start"]) for s in manifest["shards"]}  # type: ignore[attr-defined]
    ranges = shard_ranges(int(manifest["n_examples"]), int(manifest["shard_size"]))  # type: ignore[call-overload]
    return [r for r in ranges if r.start not in done]


def write_capture_shard(folder: Path, shard: ShardRange, tensors: dict[str, np.ndarray]) -> dict[str, object]:
    """Write one shard atomically; return its manifest record `{file, start, stop, rows, bytes, sha256}`."""
    size, digest = write_shard(folder / shard_name(shard.index), tensors)
    rows = len(tensors["example_index"])
    return {"file": shard_name(shard.index), "start": shard.start, "stop": shard.stop, "rows": rows, "bytes": size,
            "sha256": digest}


def check_shard_record(folder: Path, record: dict[str, object], shard: ShardRange) -> None:
    """Check a shard record against its file: name, range, file present, size, sha256 (when recorded), row counts.

    Raises:
        StoreError: naming the file and what disagrees.
    """
    path = folder / str(record.get("file"))
    expected = (shard_name(shard.index), shard.start, shard.stop)
    if (record.get("file"), record.get("start"), record.get("stop")) != expected:
        raise StoreError(f"{path}: shard record {record} does not match shard {expected}")
    if not path.is_file():
        raise StoreError(f"{path}: the shard's record is there but its file is missing (a Ray worker on another "
                         "filesystem, or a deleted file)")
    if path.stat().st_size != record.get("bytes"):
        raise StoreError(f"{path}: {path.stat().st_size} bytes on disk, the record says {record.get('bytes')}")
    if record.get("sha256") and file_sha256(path) != record["sha256"]:
        raise StoreError(f"{path}: content differs from the sha256 recorded when it was written")
    try:
        with safe_open(str(path), framework="np") as f:
            rows = {name: f.get_slice(name).get_shape()[0] for name in f.keys()}
            index = f.get_tensor("example_index")
    except Exception as e:  # safetensors raises its own error type for a bad header
        raise StoreError(f"{path}: corrupt shard ({e})") from None
    if set(rows.values()) != {record.get("rows")}:
        raise StoreError(f"{path}: row counts {sorted(set(rows.values()))} disagree with the record's {record.get('rows')}")
    if len(index) and not (shard.start <= int(index.min()) and int(index.max()) < shard.stop):
        raise StoreError(f"{path}: example_index outside {shard.start}:{shard.stop}")


def add_shard(folder: Path, manifest: dict[str, object], record: dict[str, object]) -> dict[str, object]:
    """List a written shard in the manifest (sorted by start) and rewrite it atomically."""
    shards = [s for s in manifest["shards"] if s["start"] != record["start"]]  # type: ignore[attr-defined]
    manifest["shards"] = sorted([*shards, record], key=lambda s: int(s["start"]))
    write_manifest(folder, manifest)
    return manifest


def commit(folder: Path, manifest: dict[str, object]) -> ActivationStore:
    """Mark the store complete once every shard is listed, present and of the recorded size.

    Also removes temp files a killed writer left behind (see `remove_temp_files`).

    Raises:
        StoreError: a shard is missing from the manifest or disagrees with its file.
    """
    listed = {int(s["start"]): s for s in manifest["shards"]}  # type: ignore[attr-defined]
    for shard in shard_ranges(int(manifest["n_examples"]), int(manifest["shard_size"])):  # type: ignore[call-overload]
        if shard.start not in listed:
            raise StoreError(f"{folder}: shard {shard_name(shard.index)} ({shard.start}:{shard.stop}) not done")
        check_shard_record(folder, listed[shard.start], shard)
    remove_temp_files(folder)
    manifest["complete"] = True
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_manifest(folder, manifest)
    return ActivationStore(folder)


__all__ = [
    "ShardRange", "add_shard", "check_shard_record", "commit", "examples_hash", "open_store", "pending_shards",
    "remove_temp_files", "shard_ranges", "verify_shards", "write_capture_shard",
]
