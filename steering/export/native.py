"""Native export: the workbench's own safetensors file plus an export record.

The file is exactly what `SteeringVector.save` writes (tensors `layer.L`, the
vector's header under the `workbench` metadata key), with the `ExportInfo` as
JSON under `workbench.export`. A vector measured behind a gate (a gated sweep
cell, or the gated family) carries its gate in the same file (tensor
`gate.direction`, its header under `workbench.gate`), so the export steers only
where the sweep measured it (`read_export_gate`; `workbench steer` applies it). So `SteeringVector.load` reads an export too,
and `load_native` gives back an identical vector (bit-for-bit, `==`) and the
record. The vector stays raw: the recommended strength is metadata.

Example:
    >>> import numpy as np
    >>> from steering.artifacts.steering_vector import SteeringVector
    >>> v = SteeringVector({3: np.ones(4, dtype=np.float32)}, method="mean_diff", d_model=4)
    >>> path = export_native(v, "/tmp/v.export.safetensors", mode="add", strength=4.0)  # doctest: +SKIP
    >>> load_native(path)[0] == v  # doctest: +SKIP
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp.store.tagged_file import read_tagged, write_tagged
from steering.artifacts.probe_gate import ProbeGate
from steering.artifacts.steering_vector import SteeringVector
from steering.export.info import ExportError, ExportInfo, check_mode

if TYPE_CHECKING:
    from steering.artifacts.steerable import Steerable

EXPORT_KEY = "workbench.export"
GATE_KEY = "workbench.gate"
MODES = ("add", "ablate")


def export_native(
    vector: Steerable, path: str | Path, mode: str = "add", strength: float | None = None,
    measured: dict[str, Any] | None = None,
) -> Path:
    """Write `vector` (raw), its export record and its gate (if it was measured behind one) to a safetensors file,
    atomically.

    Args:
        vector: the vector (or low-rank edit, whose own file this is then), already restricted to the layers to
            export.
        path: output file (`.safetensors`).
        mode: "add" or "ablate".
        strength: recommended strength (required for add; ablate defaults to 1 = full).
        measured: gain/loss measured at that operating point, if known.

    Raises:
        ExportError: for clamp or an add without a strength.
    """
    check_mode(mode, "safetensors", MODES)
    info = ExportInfo.for_vector(vector, "safetensors", mode, strength, measured)
    tensors, records = vector.tensors(), {"workbench": vector.header(), EXPORT_KEY: info.to_dict()}
    gate = vector_gate(vector)
    if gate is not None:
        tensors["gate.direction"], records[GATE_KEY] = gate.direction_unit, gate.header()
    return write_tagged(path, tensors, records)


def vector_gate(vector: Steerable) -> ProbeGate | None:
    """The gate a vector was measured behind (`meta["gate_files"]`, keyed by layer: the one at its first layer).

    Raises:
        ExportError: the vector names gates but none at its first layer.
    """
    files = vector.meta.get("gate_files")
    if not files:
        return None
    first = str(min(vector.layers))
    if first not in files:
        raise ExportError(f"the vector was measured behind gates at layers {sorted(files)}, none at its first layer "
                          f"{first}: export the layers it was measured at")
    return ProbeGate.load(files[first])


def read_export_gate(path: str | Path) -> ProbeGate | None:
    """The gate a native export carries (None: it steers every prompt).

    Example:
        >>> read_export_gate("best.safetensors").layer  # doctest: +SKIP
        12
    """
    records, tensors = read_tagged(path, "export")
    header = records.get(GATE_KEY)
    if not isinstance(header, dict):
        return None
    return ProbeGate(tensors["gate.direction"], float(header["bias"]), float(header["threshold"]),
                     int(header["layer"]), str(header["site"]), float(header["scale"]), str(header["per"]),
                     dict(header.get("meta", {})))


def read_native_info(path: str | Path) -> ExportInfo:
    """The export record of a native export.

    Raises:
        ExportError: for a file without one (a plain saved vector).
    """
    try:
        records, _ = read_tagged(path, "export", load_tensors=False)
    except ValueError as e:
        raise ExportError(str(e)) from None
    if not isinstance(records.get(EXPORT_KEY), dict):
        raise ExportError(f"{path}: no {EXPORT_KEY!r} metadata; a plain vector file, not an export")
    return ExportInfo.from_dict(records[EXPORT_KEY])


def load_native(path: str | Path) -> tuple[SteeringVector, ExportInfo]:
    """Import a native export: the identical vector and its record.

    Example:
        >>> vector, info = load_native("artifacts/demo/export/v.safetensors")  # doctest: +SKIP
    """
    return SteeringVector.load(path), read_native_info(path)
