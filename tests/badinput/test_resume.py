"""The library side of bad input: a store that does not cover its examples is never read, a resume repairs it,
errors carry their location, files get the umask's mode, temp-file clean-up spares real files."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from interp.capture.collect import CaptureConfig, capture
from interp.errors import InputError, editor_lines, parse_json
from interp.store.activations import ActivationStore, StoreError
from interp.store.atomic import atomic_write_text
from interp.store.writer import remove_temp_files
from tests.conftest import make_examples

SITE = "blocks.1.hook_resid_post"


def test_a_complete_store_missing_a_shard_is_refused_then_repaired(tiny_model, tmp_path: Path) -> None:
    examples = make_examples(12)
    config = CaptureConfig((), (), shard_size=4)
    clean = capture(tiny_model, examples, SITE, "last_prompt", tmp_path / "clean", config=config)
    damaged = tmp_path / "damaged"
    shutil.copytree(clean.path, damaged)
    manifest = json.loads((damaged / "manifest.json").read_text())
    manifest["shards"].pop(1)  # the old advice: delete the shard and its manifest entry
    (damaged / "shard-00001.safetensors").unlink()
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="cover examples 0:4 of 12"):
        ActivationStore(damaged)  # never NaN rows from a store that says it is complete
    notes: list[str] = []
    repaired = capture(tiny_model, examples, SITE, "last_prompt", damaged, config=config, log=notes.append)
    assert any("recomputing" in n for n in notes)
    got, want = repaired.get(SITE, "last_prompt"), clean.get(SITE, "last_prompt")
    assert not np.isnan(got).any() and np.array_equal(got, want)
    assert all("sha256" in s for s in repaired.manifest["shards"])


def test_temp_file_cleanup_spares_real_files(tmp_path: Path) -> None:
    keep = ["shard-00000.safetensors", "manifest.json", "examples.jsonl", ".tmp-notes", ".tmpABCDEFG"]
    drop = [".tmpAb12Cd", ".shard-00001.safetensors.x8_k2.tmp", ".manifest.json.abc.tmp"]
    for name in keep + drop:
        (tmp_path / name).write_text("x")
    assert sorted(p.name for p in remove_temp_files(tmp_path)) == sorted(drop)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_get_the_umask_mode(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_input_errors_name_their_location_and_survive_pickling() -> None:
    err = InputError("not a number", path="d.jsonl", line=3, field="correct", expected="an integer")
    assert str(err) == "d.jsonl, line 3: field 'correct': not a number (expected an integer)"
    assert str(pickle.loads(pickle.dumps(err))) == str(err)
    assert isinstance(err, ValueError)
    with pytest.raises(InputError, match=r"x.json, line 2: not valid JSON"):
        parse_json('{"a": 1,\n]', "x.json")
    with pytest.raises(InputError, match="nested too deeply"):
        parse_json("[" * 100_000 + "]" * 100_000, "x.json")
    assert editor_lines("a\u2028b\x0cc\r\nd\re") == ["a\u2028b\x0cc", "d", "e"]


def test_tagged_files_list_their_metadata_sorted(tmp_path: Path) -> None:
    """safetensors keeps metadata in a hash map; sorted, equal content gives equal bytes in every process."""
    from interp.store.tagged_file import read_tagged, write_tagged

    records = {f"key{i}": {"i": i} for i in (5, 1, 9, 3, 7)}
    path = write_tagged(tmp_path / "t.safetensors", {"v": np.ones(3, np.float32)}, records)
    n = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8:8 + n])
    assert list(header["__metadata__"]) == sorted(records)
    assert read_tagged(path, "test")[0] == records
