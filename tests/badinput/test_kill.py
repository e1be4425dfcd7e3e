"""kill -9 during caching, a sweep and an export; each resumed and compared byte for byte with an uninterrupted run.

The killed run is a subprocess (`tests.badinput.killer` SIGKILLs it at a chosen
moment); the resume and the uninterrupted run go through the CLI in process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from interp.store.activations import ActivationStore, StoreError
from interp.tasks.example import write_examples
from steering.artifacts.steering_vector import SteeringVector
from steering.export import load_native, read_gguf_control_vector
from tests.badinput.workspace import Workspace, invoke
from tests.conftest import make_examples

ROOT = Path(__file__).resolve().parents[2]


def killed(mode: str, part: str, nth: int, *args: object) -> subprocess.CompletedProcess[str]:
    """Run `workbench args` in a subprocess that SIGKILLs itself at the chosen moment; check it was killed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "tests.badinput.killer", mode, part, str(nth), "--",
                           *(str(a) for a in args)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    return proc


def ok(*args: object) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.output


def same_shards(resumed: Path, clean: Path) -> None:
    names = sorted(p.name for p in clean.glob("shard-*.safetensors"))
    assert names and sorted(p.name for p in resumed.glob("shard-*.safetensors")) == names
    for name in names:
        assert (resumed / name).read_bytes() == (clean / name).read_bytes(), name
    assert (resumed / "examples.jsonl").read_bytes() == (clean / "examples.jsonl").read_bytes()
    assert not [p.name for p in resumed.iterdir() if p.name.startswith(".")], "a temp file survived the resume"
    shards = [json.loads((f / "manifest.json").read_text())["shards"] for f in (resumed, clean)]
    assert shards[0] == shards[1]


@pytest.fixture(scope="module")
def cache_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kill-data") / "data.jsonl"
    write_examples(make_examples(24), path)
    return path


def cache_args(ws: Workspace, data: Path, artifacts: Path) -> list[object]:
    return ["cache", "--run", "k", "--model", ws.model, "--data", data, "--sites", "blocks.*.hook_resid_post",
            "--positions", "last_prompt,user_claim,all", "--shard-size", "4", "--batch-size", "2",
            "--artifacts", artifacts]


@pytest.mark.parametrize("mode, part, nth", [("rename", "shard-", 3), ("safetensors-temp", "", 4)])
def test_kill_during_caching_then_resume_is_byte_identical(ws: Workspace, cache_data: Path, tmp_path: Path,
                                                           mode: str, part: str, nth: int) -> None:
    killed(mode, part, nth, *cache_args(ws, cache_data, tmp_path / "killed"))
    store = tmp_path / "killed" / "k" / "activations"
    manifest = json.loads((store / "manifest.json").read_text())
    assert not manifest["complete"] and len(manifest["shards"]) == nth - 1
    leftovers = [p.name for p in store.iterdir() if p.name.startswith(".")]
    assert leftovers, "the kill should leave a temp file to clean"
    if mode == "safetensors-temp":
        assert ".tmpK1ll9x" in leftovers
    with pytest.raises(StoreError, match="incomplete store"):
        ActivationStore(store)
    out = ok(*cache_args(ws, cache_data, tmp_path / "killed"))
    assert "a temp file left by an interrupted write" in out
    ok(*cache_args(ws, cache_data, tmp_path / "clean"))
    same_shards(store, tmp_path / "clean" / "k" / "activations")


def sweep_args(ws: Workspace, artifacts: Path) -> list[object]:
    return ["sweep", "--run", "s", "--model", ws.model, "--method", "caa", "--layers", "1",
            "--strengths", "-4,-2,2,4", "--k-batch", "1", "--positions", "generated", "--n-test", "2",
            "--n-small", "1", "--n-feedback", "0", "--n-capability", "1", "--n-train", "4", "--gen-prompts", "0",
            "--budget", "1000", "--artifacts", artifacts]


def cells(folder: Path) -> pd.DataFrame:
    table = pd.read_parquet(folder / "cells.parquet").drop(columns=["seconds"])
    return table.sort_values(["method", "layer", "strength", "positions"]).reset_index(drop=True)


def test_kill_during_sweep_then_resume_equals_uninterrupted_and_vector_says_where_it_was_measured(
        ws: Workspace, tmp_path: Path) -> None:
    killed("rename", "cells.parquet", 2, *sweep_args(ws, tmp_path / "killed"))
    folder = tmp_path / "killed" / "s" / "sweep"
    done = len(pd.read_parquet(folder / "cells.parquet"))  # the cells of the passes that landed before the kill
    assert json.loads((folder / "sweep.json").read_text())["status"] == "running"
    assert list(folder.glob(".cells.parquet.*.tmp")), "the kill should leave the table's temp file"
    (folder / "vectors" / ".tmpAbC123").write_bytes(b"\0" * 64)  # as a kill inside a vector's write would leave
    out = ok(*sweep_args(ws, tmp_path / "killed"))
    assert not [p.name for p in [*folder.iterdir(), *(folder / "vectors").iterdir()] if p.name.startswith(".")]
    assert f"{done} already done" in out
    ok(*sweep_args(ws, tmp_path / "clean"))
    clean = tmp_path / "clean" / "s" / "sweep"
    assert 0 < done < len(cells(clean))
    pd.testing.assert_frame_equal(cells(folder), cells(clean))
    vectors = sorted(p.name for p in (clean / "vectors").glob("*.safetensors"))
    assert vectors
    for name in vectors:  # equal but for the store path they were built from (under each run's own folder)
        got, want = (SteeringVector.load(f / "vectors" / name) for f in (folder, clean))
        assert got.meta.pop("store").replace("killed", "clean") == want.meta.pop("store"), name
        assert got == want, name
    # provenance: the sweep steered `generated` positions, so the vector and its exports say so
    vector_file = clean / "vectors" / vectors[0]
    vector = SteeringVector.load(vector_file)
    assert vector.positions == "generated" and vector.meta["measured_positions"] == ["generated"]
    ok("export", "--vector", vector_file, "--format", "safetensors", "--strength", "-2", "--out", tmp_path / "e.safetensors")
    assert load_native(tmp_path / "e.safetensors")[1].positions == "generated"
    ok("export", "--vector", vector_file, "--format", "gguf", "--strength", "-2", "--out", tmp_path / "e.gguf")
    assert read_gguf_control_vector(tmp_path / "e.gguf").positions == "generated"


def test_kill_during_export_then_rerun_is_byte_identical(ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "v.gguf"
    args = ["export", "--vector", ws.vector, "--format", "gguf", "--strength", "3", "--layers", "1-2", "--out", out]
    killed("rename", out.name, 1, *args)
    assert not out.exists(), "a killed export must not leave a half file under the real name"
    assert list(tmp_path.glob(f".{out.name}.*.tmp")), "the kill should leave the temp file"
    assert "interrupted export" in ok(*args)
    assert not list(tmp_path.glob(f".{out.name}.*.tmp"))
    clean = tmp_path / "clean" / out.name
    ok(*args[:-1], clean)
    assert out.read_bytes() == clean.read_bytes()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_honour_the_umask(ws: Workspace, tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        ok("export", "--vector", ws.vector, "--format", "gguf", "--strength", "1", "--out", tmp_path / "v.gguf")
    finally:
        os.umask(old)
    assert (tmp_path / "v.gguf").stat().st_mode & 0o777 == mode
