"""The good files a bad-input case starts from: data, a vector, a gate, a GGUF export, a cached store.

Every case damages a copy of one of these (or passes a bad option next to them), so a
failure points at the one thing the case changed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from interp.tasks.example import write_examples
from steering.artifacts.probe_gate import ProbeGate
from tests.conftest import make_examples
from tests.steering.builders import random_vector
from workbench.cli import app

runner = CliRunner()
#: the store every store case copies: cached from `data` with these options
STORE_OPTIONS = ("--sites", "blocks.1.hook_resid_post", "--positions", "last_prompt", "--shard-size", "4",
                 "--batch-size", "4")


def invoke(*args: object):  # type: ignore[no-untyped-def]
    """Run the CLI in this process; the result has `exit_code` and `output` (stdout and stderr)."""
    return runner.invoke(app, [str(a) for a in args])


@dataclass(frozen=True)
class Workspace:
    """Paths of the good inputs, and a folder for each case's bad ones."""

    root: Path
    model: Path
    data: Path
    vector: Path
    gate: Path
    gguf: Path
    store_run: Path  # artifacts folder holding run "good" with a complete store

    def case_dir(self, name: str) -> Path:
        folder = self.root / "cases" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def store_copy(self, name: str) -> tuple[Path, Path]:
        """(artifacts folder, its activations folder): a fresh copy of the good store for one case."""
        artifacts = self.case_dir(name) / "art"
        shutil.copytree(self.store_run, artifacts)
        return artifacts, artifacts / "good" / "activations"

    def cache_args(self, artifacts: Path) -> list[object]:
        """The `cache` command that made the good store, pointed at `artifacts`."""
        return ["cache", "--run", "good", "--model", self.model, "--data", self.data, *STORE_OPTIONS,
                "--artifacts", artifacts]


def build_workspace(root: Path, model_dir: Path, model) -> Workspace:  # type: ignore[no-untyped-def]
    """Write the good inputs once per session (the tiny model, 12 examples)."""
    data = root / "data.jsonl"
    write_examples(make_examples(12), data)
    vector = random_vector(model, layers=(1, 2, 3)).save(root / "v.safetensors")
    direction = np.zeros(model.d_model, dtype=np.float32)
    direction[0] = 1.0
    gate = ProbeGate(direction, bias=0.0, threshold=0.0, layer=1,
                     meta={"model_hash": model.weights_hash}).save(root / "gate.safetensors")
    gguf = root / "v.gguf"
    result = invoke("export", "--vector", vector, "--format", "gguf", "--strength", 2, "--out", gguf)
    assert result.exit_code == 0, result.output
    store_run = root / "store-art"
    result = invoke("cache", "--run", "good", "--model", model_dir, "--data", data, *STORE_OPTIONS,
                    "--artifacts", store_run)
    assert result.exit_code == 0, result.output
    manifest = json.loads((store_run / "good" / "activations" / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 3
    return Workspace(root, model_dir, data, vector, gate, gguf, store_run)
