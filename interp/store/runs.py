"""Run folders under `artifacts/`: where a run lives and its `run.json` provenance.

Every batch job writes into `artifacts/<run>/` and records what made it:
the command's config, package versions, the model's file hash, seeds and
the git commit, so the app, the CLI and later runs read the same files.

Example:
    >>> run_dir("demo", root="artifacts")
    PosixPath('artifacts/demo')
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from interp.errors import InputError, parse_json, read_text
from interp.outputs import prepare_dir
from interp.store.atomic import atomic_write_json

_RUN_NAME = re.compile(r"^\w[\w.+-]*$")
MAX_RUN_NAME = 100
PACKAGES = ("torch", "transformers", "nnsight", "transformer-lens", "scikit-learn", "safetensors", "gguf", "numpy")


def artifacts_root(root: str | Path | None = None) -> Path:
    """`root`, else `$WORKBENCH_ARTIFACTS`, else `./artifacts`."""
    return Path(root or os.environ.get("WORKBENCH_ARTIFACTS", "artifacts"))


def run_dir(run: str, root: str | Path | None = None) -> Path:
    """`artifacts/<run>`, after checking `run` is a plain folder name.

    Raises:
        InputError: an empty, too long or path-like name (`/`, leading `.`, spaces, control characters).
    """
    if not _RUN_NAME.match(run or "") or len(run) > MAX_RUN_NAME:
        shown = run if len(run or "") <= 40 else run[:37] + "..."
        raise InputError(f"run name {shown!r} is not a plain folder name", path="--run",
                         expected=f"letters, digits, '.', '-', '_' (not first), at most {MAX_RUN_NAME} characters")
    return artifacts_root(root) / run


def prepare_run_dir(run: str, root: str | Path | None = None, sub: str | None = None) -> Path:
    """`run_dir(run, root)`, created and checked writable before any model work; its `sub` folder checked not a file.

    The `sub` folder (where the job writes) is left for the job to create, so a job refused
    before its work leaves no empty output folder behind.

    Example:
        >>> prepare_run_dir("demo", root="artifacts").name  # doctest: +SKIP
        'demo'
    """
    folder = run_dir(run, root)
    prepare_dir(folder, f"--artifacts/--run {run}")
    if sub is not None and (folder / sub).exists() and not (folder / sub).is_dir():
        raise InputError(f"is a file, expected a folder (for the {sub} of --run {run})", path=folder / sub)
    read_run_record(folder)  # a damaged run.json fails now, not after the work
    return folder


def read_run_record(folder: Path) -> dict[str, Any]:
    """`folder/run.json` (`{"steps": {}}` when absent); an InputError naming it when it is damaged."""
    path = folder / "run.json"
    if not path.exists():
        return {"steps": {}}
    record = parse_json(read_text(path, "run record"), path)
    if not isinstance(record, dict) or not isinstance(record.get("steps"), dict):
        raise InputError("not a run record; move it away to start the run's record afresh", path=path,
                         field="steps", expected="a JSON object with a 'steps' object")
    return record


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    found["python"] = platform.python_version()
    return found


def record_run(folder: Path, step: str, config: dict[str, Any], model: dict[str, Any] | None = None,
               seeds: dict[str, int] | None = None) -> dict[str, Any]:
    """Add (or replace) one step's record in `folder/run.json`; return the whole record."""
    path = folder / "run.json"
    record = read_run_record(folder)
    record["steps"][step] = {
        "config": config,
        "model": model or {},
        "seeds": seeds or {},
        "versions": versions(),
        "git_commit": git_commit(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if model:
        record["model"] = model
    atomic_write_json(path, record)
    return record
