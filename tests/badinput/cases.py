"""The bad-input corpus: one `Case` per bad input, across every command.

A case builds its bad input in its own folder from the good workspace and names
the command line; the test runs it and checks the exit status (2: refused with
one line; 0: a documented success such as a repaired store) and that the output
names what the case expects (file, line or record, field or option). The cases
themselves live in `corpus_data.py`, `corpus_files.py` and `corpus_commands.py`;
this module holds the registry and the builders they share.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.badinput import files
from tests.badinput.files import lines
from tests.badinput.workspace import Workspace

Build = Callable[[Workspace, Path], list[object]]
Check = Callable[[Workspace, Path, str], None]


@dataclass(frozen=True)
class Case:
    """One bad input: `build(ws, folder)` writes it and returns the command line."""

    name: str
    build: Build
    expect: tuple[str, ...]
    code: int = 2
    check: Check | None = None


CASES: list[Case] = []


def case(name: str, build: Build, *expect: str, code: int = 2, check: Check | None = None) -> None:
    CASES.append(Case(name, build, expect, code, check))


def cache_data(make: Callable[[Path], Path]) -> Build:
    return lambda ws, d: ["cache", "--run", "r", "--model", ws.model, "--data", make(d), "--artifacts", d / "art"]


def eval_data(make: Callable[[Path], Path], *extra: str) -> Build:
    return lambda ws, d: ["eval", "--run", "r", "--model", ws.model, "--data", make(d), *extra,
                          "--artifacts", d / "art"]


def eval_args(*extra: object) -> Build:
    return lambda ws, d: ["eval", "--run", "r", "--model", ws.model, "--tasks", "answer", "--n", "2",
                          "--artifacts", d / "art", *extra]


def a_file(d: Path) -> Path:
    path = d / "a-file"
    path.write_text("not a folder")
    return path


def model_copy(damage: Callable[[Path], object]) -> Build:
    """`cache` with a damaged copy of the tiny model folder."""
    def build(ws: Workspace, d: Path) -> list[object]:
        model = d / "model"
        shutil.copytree(ws.model, model)
        damage(model)
        return ["cache", "--run", "r", "--model", model, "--data", ws.data, "--artifacts", d / "art"]
    return build


def store_case(damage: Callable[[Path], object]) -> Build:
    def build(ws: Workspace, d: Path) -> list[object]:
        artifacts, store = ws.store_copy(d.name)
        damage(store)
        return ws.cache_args(artifacts)
    return build


def manifest_edit(change: Callable[[dict], object]) -> Callable[[Path], object]:
    def damage(store: Path) -> None:
        manifest = json.loads((store / "manifest.json").read_text())
        change(manifest)
        (store / "manifest.json").write_text(json.dumps(manifest))
    return damage


def same_as_good(ws: Workspace, d: Path, output: str) -> None:
    """The repaired store equals the uninterrupted one, shard for shard, and reads without NaN."""
    from interp.store.activations import ActivationStore

    good = ws.store_run / "good" / "activations"
    fixed = d / "art" / "good" / "activations"
    names = sorted(p.name for p in good.glob("shard-*.safetensors"))
    assert sorted(p.name for p in fixed.glob("shard-*.safetensors")) == names
    for name in names:
        assert (fixed / name).read_bytes() == (good / name).read_bytes(), name
    assert not [p.name for p in fixed.iterdir() if p.name.startswith(".")], "a temp file survived"
    assert not np.isnan(ActivationStore(fixed).get("blocks.1.hook_resid_post", "last_prompt")).any()


def set_key(key: str, value: object) -> Callable[[dict], object]:
    return lambda m: m.__setitem__(key, value)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))


def probe_args(*extra: object) -> Build:
    return lambda ws, d: ["probe", "--run", "r", "--model", ws.model, "--n", "2", "--tasks", "answer",
                          "--artifacts", d / "art", *extra]


def config_file(name: str, text: str) -> Build:
    def build(ws: Workspace, d: Path) -> list[object]:
        (d / name).write_text(text)
        return ["probe", "--config", d / name, "--artifacts", d / "art"]
    return build


def steer_args(*extra: object, vector: Callable[[Workspace, Path], object] | None = None) -> Build:
    return lambda ws, d: ["steer", "--vector", vector(ws, d) if vector else ws.vector, "--strength", "2",
                          "--model", ws.model, "--max-new-tokens", "2", *extra]


def prompts(name: str, rows: list[str] | bytes) -> Build:
    def build(ws: Workspace, d: Path) -> list[object]:
        path = d / name
        if isinstance(rows, bytes):
            path.write_bytes(rows)
        else:
            lines(path, rows)
        return steer_args("--prompts", path)(ws, d)
    return build


def gate_file(make: Callable[[Workspace, Path], Path]) -> Build:
    return lambda ws, d: steer_args("--prompt", "hi", "--gate", make(ws, d))(ws, d)


def other_model_vector(ws: Workspace, d: Path) -> Path:
    """A valid vector for a model 32 wide (the tiny model is 64)."""
    from steering.artifacts.steering_vector import SteeringVector

    return SteeringVector({1: np.ones(32, np.float32)}, method="x", d_model=32).save(d / "v32.safetensors")


def other_hash_vector(ws: Workspace, d: Path) -> Path:
    header, tensors = files.header_of(ws.vector)
    return files.retagged(ws.vector, d / "vh.safetensors", header={**header, "model_hash": "f" * 64})


def layer_vector(layer: int, embedded: bool = False) -> Callable[[Workspace, Path], Path]:
    """A valid vector at `layer`: for the tiny model, or (`embedded`) one that records the embedded model (30
    layers) by its weights hash only, so an export without --model checks it against that record."""
    def make(ws: Workspace, d: Path) -> Path:
        from interp.models.loading import embedded_gguf_path, file_hash
        from steering.artifacts.steering_vector import SteeringVector

        width, digest = (576, file_hash(embedded_gguf_path())) if embedded else (64, "")
        return SteeringVector({layer: np.ones(width, np.float32)}, method="x", d_model=width, model_hash=digest,
                              arch="llama").save(d / f"layer{layer}.safetensors")
    return make


def export_from(make: Callable[[Workspace, Path], object], *extra: object) -> Build:
    return lambda ws, d: ["export", "--vector", make(ws, d), "--format", "safetensors", "--strength", "1",
                          "--out", d / "out.safetensors", *extra]


def export_args(*extra: object, out: Callable[[Path], object] | None = None) -> Build:
    return lambda ws, d: ["export", "--vector", ws.vector, "--format", "safetensors",
                          "--out", out(d) if out else d / "o.safetensors", *extra]


def measured(text: str) -> Build:
    def build(ws: Workspace, d: Path) -> list[object]:
        (d / "m.json").write_text(text)
        return export_args("--measured", d / "m.json")(ws, d)
    return build


def gguf_export(make: Callable[[Workspace, Path], Path]) -> Build:
    return export_from(make)


def sweep_args(*extra: object) -> Build:
    return lambda ws, d: ["sweep", "--run", "r", "--model", ws.model, "--quick", "--layers", "1", "--artifacts", d / "art",
                          *extra]


def damaged_sweep(name: str, content: bytes) -> Build:
    """A sweep run whose `name` (under artifacts/r/sweep) is damaged before the sweep resumes."""
    def build(ws: Workspace, d: Path) -> list[object]:
        folder = d / "art" / "r" / "sweep"
        folder.mkdir(parents=True)
        (folder / name).write_bytes(content)
        return sweep_args()(ws, d)
    return build


def all_cases() -> list[Case]:
    """Every case of the corpus (the corpus_* modules register theirs on import)."""
    from tests.badinput import corpus_commands, corpus_data, corpus_files  # noqa: F401

    return CASES
