"""The vector picker shared by the Playground and Export pages.

A vector comes from the run's sweep (its recommended operating point, or a
method's vector), from a probe direction (`steering.methods.from_probe`), or from a
file the user uploads.

Example:
    >>> picked = vector_picker(folder, "pg")  # doctest: +SKIP
    >>> picked.vector.layers, picked.label  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from app import data, steering_data

if TYPE_CHECKING:
    from steering.artifacts.steering_vector import SteeringVector

PROBE, FILE, UPLOAD = "probe direction", "vector file of this run", "upload a file"


@dataclass(frozen=True)
class Picked:
    """The chosen vector, a short label, and where it came from (a file path or a direction key)."""

    vector: SteeringVector
    label: str
    origin: str


def default_direction(folder: Path, keys: list[str]) -> str:
    """The best-AUROC direction of `user_vs_third_party` (else `pressure`), else the first key."""
    best = data.best_layers(folder)
    if best is not None and not best.empty:
        ranked = best.sort_values("auroc", ascending=False)
        for source in ("user_vs_third_party", "pressure"):
            for _, row in ranked[ranked["label_source"] == source].iterrows():
                key = f"{row['label_source']}/{row['method']}/{row['position']}/{row['site']}"
                if key in keys:
                    return key
    return keys[0]


def _file_label(folder: Path, path: Path) -> str:
    name = str(path.relative_to(folder))
    return f"{name}  (sweep's recommended operating point)" if path.name == "recommended.safetensors" else name


def vector_picker(folder: Path, prefix: str, prefer_files: bool = False) -> Picked | None:
    """Radio (source) + selectbox (which one); returns None (with an info box) when nothing is chosen."""
    dirs = data.directions(folder)
    files = steering_data.vector_files(folder)
    sources = [name for name, ok in ((PROBE, bool(dirs)), (FILE, bool(files)), (UPLOAD, True)) if ok]
    if prefer_files and FILE in sources:
        sources.remove(FILE)
        sources.insert(0, FILE)
    left, right = st.columns([1, 2])
    source = left.radio("Vector from", sources, key=f"{prefix}_source",
                        help="probe directions: probes/directions.safetensors; files: the sweep's vectors, its "
                             "recommended vector and the run's exports")
    try:
        if source == PROBE:
            keys = sorted(dirs)
            key = right.selectbox("Probe direction", keys, index=keys.index(default_direction(folder, keys)),
                                  key=f"{prefix}_direction",
                                  help="label source / method / position / site; default: best layer by AUROC")
            return Picked(steering_data.probe_vector(folder, key), key, key)
        if source == FILE:
            recommended = [p for p in files if p.name == "recommended.safetensors"]
            index = files.index(recommended[0]) if recommended else 0
            path = right.selectbox("Vector file", files, index=index, format_func=lambda p: _file_label(folder, p),
                                   key=f"{prefix}_file")
            return Picked(steering_data.read_vector(path), str(path.relative_to(folder)), str(path))
        upload = right.file_uploader("Vector file (.safetensors or .gguf)", type=["safetensors", "gguf"],
                                     key=f"{prefix}_upload")
        if upload is None:
            st.info("Upload a steering vector file, or choose another source.")
            return None
        return Picked(steering_data.vector_from_bytes(upload.name, upload.getvalue()), upload.name, upload.name)
    except (ValueError, OSError) as e:
        st.warning(f"Cannot read this vector: {e}")
        return None
