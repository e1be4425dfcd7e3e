"""Cached loaders of the steering side: the sweep, steering vectors, exports, and the live model.

Same rules as `app.data`: a run folder in, the artifact (or None) out, caches
keyed on file modification times, unreadable files shown as warnings.

Example:
    >>> swept = sweep(run_folder("demo"))  # doctest: +SKIP
    >>> swept.table[["method", "layer", "strength", "answer_shift_gain", "kl"]]  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from app.data import directions, read_json, shown, stamp, table, unreadable

if TYPE_CHECKING:
    from interp.models.loading import ChatModel
    from interp.tasks.example import Example
    from steering.artifacts.steering_vector import SteeringVector

PRESET_TASKS = ("answer", "are_you_sure", "mimicry", "feedback")


# -- sweep ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sweep:
    """What `steering.sweep.run.run_sweep` and `steering.sweep.report.write_report` left in <run>/sweep.

    Args:
        table: cells.parquet, one row per (method, layer, strength, positions, mode) with the vector's
            norm, its fraction of the residual norm and every gain/loss metric with `_low`/`_high` CIs.
        record: sweep.json (config with the default gain, loss and budget; baseline; vectors; split).
        report: report.json (fits, frontier, operating point at the sweep's budget), or {}.
        generations: generations.parquet (a few greedy answers per cell), or None.
        folder: the sweep folder.
    """

    table: pd.DataFrame
    record: dict[str, Any]
    report: dict[str, Any]
    generations: pd.DataFrame | None
    folder: Path


@shown
def sweep(folder: Path) -> Sweep | None:
    """The run's sweep, or None when it has no cells yet (the Trade-off page's only data access)."""
    base = folder / "sweep"
    cells = base / "cells.parquet"
    if not cells.is_file():
        return None
    frame = _sweep_table(str(base), stamp(cells))
    if frame.empty:
        return None
    return Sweep(table=frame, record=read_json(str(base / "sweep.json"), stamp(base / "sweep.json")) or {},
                 report=read_json(str(base / "report.json"), stamp(base / "report.json")) or {},
                 generations=table(base / "generations.parquet"), folder=base)


@st.cache_data(show_spinner=False)
def _sweep_table(folder: str, mtime: int) -> pd.DataFrame:
    from steering.sweep.run import read_table

    try:
        return read_table(Path(folder))
    except (OSError, ValueError) as e:
        raise unreadable(Path(folder) / "cells.parquet", e) from None


# -- vectors ---------------------------------------------------------------------------------------


def probe_vector(folder: Path, key: str, arch: str = "") -> SteeringVector:
    """The probe direction `key` of a run as a single-layer SteeringVector (`steering.methods.from_probe`)."""
    from steering.methods.from_probe import vector_from_direction

    return vector_from_direction(directions(folder)[key], arch=arch)


def vector_files(folder: Path) -> list[Path]:
    """SteeringVector files (.safetensors, .gguf) a run holds outside its probes and activations."""
    found: list[Path] = []
    for part in ("sweep", "exports", "vectors"):
        base = folder / part
        if base.is_dir():
            found += sorted(p for p in base.rglob("*") if p.suffix in (".safetensors", ".gguf") and p.is_file()
                            and "activations" not in p.parts and "gates" not in p.parts)
    return found


def gate_files(folder: Path) -> list[Path]:
    """Probe gates a sweep trained (`sweep/gates/layer<L>.safetensors`, from `workbench sweep --gate`)."""
    base = folder / "sweep" / "gates"
    return sorted(base.glob("layer*.safetensors")) if base.is_dir() else []


def read_vector(path: Path) -> SteeringVector:
    """A SteeringVector from a workbench .safetensors (plain or exported) or a .gguf control vector.

    Raises:
        ValueError: for a file that is neither.
    """
    return _vector(str(path), stamp(path))


@st.cache_resource(show_spinner=False)
def _vector(path: str, mtime: int) -> SteeringVector:
    return _read_vector_file(path)


def _read_vector_file(path: str) -> SteeringVector:
    from steering.artifacts.vector_file import read_vector as read_vector_file

    return read_vector_file(path)


def vector_from_bytes(name: str, payload: bytes) -> SteeringVector:
    """A vector uploaded in the browser (written to a temp file, read by the packages)."""
    import tempfile

    suffix = ".gguf" if name.endswith(".gguf") else ".safetensors"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(payload)
        return _read_vector_file(str(path))



# -- exports ---------------------------------------------------------------------------------------


@shown
def export_files(folder: Path) -> list[tuple[Path, str]]:
    """Exports under <run>/exports with their format (`steering.export.detect_format`)."""
    from steering.export import ExportError, detect_format

    base = folder / "exports"
    if not base.is_dir():
        return []
    found = []
    for path in sorted(base.iterdir()):
        try:
            found.append((path, detect_format(path)))
        except ExportError:
            continue
    return found


def export_info(path: Path, format: str) -> dict[str, Any] | None:
    """The export record (`ExportInfo.to_dict()`) an export carries, or None for a file from elsewhere."""
    from steering.export.folded import folded_info
    from steering.export.gguf_cvec import read_gguf_info
    from steering.export.native import read_native_info

    readers = {"safetensors": read_native_info, "gguf": read_gguf_info, "hf-folded": folded_info}
    try:
        info = readers[format](path)
    except (ValueError, OSError, KeyError):
        return None
    return None if info is None else info.to_dict()


def export_bytes(vector: SteeringVector, format: str, mode: str, strength: float | None,
                 measured: dict[str, Any] | None, file_name: str) -> tuple[bytes, list[str]]:
    """The file `steering.export.export_vector` writes for a single-file format, as bytes (for a download),
    and the warnings it gave (e.g. a vector measured on other positions than llama.cpp steers).

    Raises:
        ExportError, VectorMismatchError: a refused export, with the reason.
    """
    import tempfile
    import warnings

    from steering.export import export_vector

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        path = export_vector(format, vector, Path(tmp) / file_name, mode=mode, strength=strength, measured=measured)
        return path.read_bytes(), [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


# -- live model ------------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the model (once per server) ...", max_entries=2)
def chat_model(spec: str) -> ChatModel:
    """`interp.models.loading.load_model(spec)`, loaded once and shared by every session."""
    from interp.models.loading import load_model

    return load_model(spec)


@st.cache_resource(show_spinner=False)
def model_lock(spec: str) -> threading.Lock:
    """One lock per shared model: steering hooks act on the model itself, so only one session may run
    a (steered or unsteered) forward on it at a time."""
    return threading.Lock()


@st.cache_data(show_spinner=False)
def presets(n: int = 4, seed: int = 0) -> dict[str, list[Example]]:
    """A few examples of each task of the suite (`interp.tasks.build_task`), by task."""
    from interp.tasks import build_task

    return {task: build_task(task, n=n, seed=seed) for task in PRESET_TASKS}
