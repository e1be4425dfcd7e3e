"""`Direction`: a probe's axis at one site, with the statistics needed to use it.

A Direction holds the raw vector (activation units: its norm is the separation
of the class means along it) and derives the unit vector and the norm, so
`dataclasses.replace(d, vector=...)` never leaves them stale. Many directions
are saved together in ONE safetensors file: the vectors as tensors, everything
else as JSON in the file's string metadata.

Example:
    >>> import numpy as np
    >>> d = Direction(vector=np.array([3.0, 4.0]), layer=2, site="blocks.2.hook_resid_post",
    ...               position="last_prompt", method="mean_diff", label_source="pressure")
    >>> d.norm, d.unit.tolist()
    (5.0, [0.6, 0.8])
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from interp.sites import site_layer as layer_of_site
from interp.store.compat import check_artifact_fits
from interp.store.tagged_file import check_format, format_tag, read_tagged, write_tagged

FORMAT = format_tag("directions", 1)
#: the tag of directions files written before the one tag scheme (with a separate "version": "1"), still read
LEGACY_FORMAT = "workbench.directions"
_NAN_PAIR = (float("nan"), float("nan"))


def _float_pair(value: Any, name: str) -> tuple[float, float]:
    pair = tuple(float(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"{name} must hold (negative, positive), got {value!r}")
    return (pair[0], pair[1])


@dataclass(frozen=True, eq=False)
class Direction:
    """A direction in the residual stream found by a probe.

    Args:
        vector: [d_model] raw vector in activation units.
        layer: layer index (must match the `blocks.{L}.` of `site` when it has one).
        site: TransformerLens hook name, e.g. "blocks.12.hook_resid_post".
        position: named token position ("last_prompt", "answer", "user_claim", "all").
        method: probe method (a key of probes.PROBES).
        label_source: how the labels were made (a key of probes.LABEL_SOURCES).
        class_means: mean projection on the unit vector of (negative, positive) examples.
        class_stds: std of those projections, (negative, positive).
        model_hash: hash of the model file the activations came from.
        dataset_hash: hash of the examples.
        resid_norm: mean residual norm at this site (for strengths as a fraction of it).
        metadata: JSON-serialisable extras (n examples, C, folds, ...).

    Example:
        >>> d = Direction(np.ones(4), 0, "blocks.0.hook_resid_post", "answer", "lda", "contrast")
        >>> d.d_model
        4
    """

    vector: np.ndarray
    layer: int
    site: str
    position: str
    method: str
    label_source: str
    class_means: tuple[float, float] = _NAN_PAIR
    class_stds: tuple[float, float] = _NAN_PAIR
    model_hash: str = ""
    dataset_hash: str = ""
    resid_norm: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        vec = np.array(self.vector, copy=True)
        if not np.issubdtype(vec.dtype, np.floating):
            vec = vec.astype(np.float64)
        if vec.ndim != 1 or vec.size == 0:
            raise ValueError(f"vector must be 1-D [d_model], got shape {vec.shape}")
        if not np.isfinite(vec).all() or not np.any(vec):
            raise ValueError("vector must be finite and non-zero")
        vec.setflags(write=False)
        object.__setattr__(self, "vector", vec)
        site_layer = layer_of_site(self.site)
        if site_layer is not None and site_layer != self.layer:
            raise ValueError(f"layer {self.layer} does not match site {self.site!r}")
        object.__setattr__(self, "class_means", _float_pair(self.class_means, "class_means"))
        object.__setattr__(self, "class_stds", _float_pair(self.class_stds, "class_stds"))
        object.__setattr__(self, "metadata", dict(self.metadata))
        try:
            json.dumps(self.metadata)
        except TypeError as e:
            raise ValueError(f"metadata must be JSON-serialisable: {e}") from None

    @property
    def d_model(self) -> int:
        return int(self.vector.shape[0])

    @property
    def norm(self) -> float:
        return float(np.linalg.norm(self.vector.astype(np.float64)))

    @property
    def unit(self) -> np.ndarray:
        """[d_model] unit vector (float64)."""
        return self.vector.astype(np.float64) / self.norm

    @property
    def key(self) -> str:
        """A readable unique name: label_source/method/position/site."""
        return f"{self.label_source}/{self.method}/{self.position}/{self.site}"

    def project(self, X: np.ndarray) -> np.ndarray:
        """Projections [n] of activations X [n, d_model] on the unit vector."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.d_model:
            raise ValueError(f"expected activations [n, {self.d_model}], got shape {X.shape}")
        return X @ self.unit

    def info(self) -> dict[str, Any]:
        """Every field except the vector, JSON-ready."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "vector"}
        out["class_means"] = list(self.class_means)
        out["class_stds"] = list(self.class_stds)
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Direction):
            return NotImplemented
        return (
            self.vector.dtype == other.vector.dtype
            and np.array_equal(self.vector, other.vector)
            and json.dumps(self.info(), sort_keys=True) == json.dumps(other.info(), sort_keys=True)
        )


def save_directions(path: str | Path, directions: Mapping[str, Direction]) -> Path:
    """Write many directions to one safetensors file, atomically.

    Args:
        path: destination file (".safetensors").
        directions: name -> Direction; names become the tensor keys.

    Example:
        >>> d = Direction(np.ones(3), 1, "blocks.1.hook_resid_post", "answer", "lda", "pressure")
        >>> save_directions("dirs.safetensors", {d.key: d})  # doctest: +SKIP
    """
    path = Path(path)
    tensors = {name: np.ascontiguousarray(d.vector) for name, d in directions.items()}
    info = {name: d.info() for name, d in directions.items()}
    return write_tagged(path, tensors, {"format": FORMAT, "directions": info})


def load_directions(path: str | Path) -> dict[str, Direction]:
    """Read a file written by `save_directions`.

    Raises:
        ValueError: if the file is not a directions file or its parts disagree.

    Example:
        >>> dirs = load_directions("dirs.safetensors")  # doctest: +SKIP
    """
    path = Path(path)
    records, tensors = read_tagged(path, "directions")
    check_format(path, records.get("format"), FORMAT, "directions", legacy=(LEGACY_FORMAT,))
    if records.get("format") == LEGACY_FORMAT and records.get("version") != 1:
        raise ValueError(f"{path}: directions format version {records.get('version')!r}, expected 1")
    info = records.get("directions")
    if not isinstance(info, dict):
        raise ValueError(f"{path}: no 'directions' record in the metadata")
    if set(tensors) != set(info):
        raise ValueError(f"{path}: tensors and metadata name different directions")
    return {name: _from_info(tensors[name], info[name]) for name in sorted(info)}


def _from_info(vector: np.ndarray, info: dict[str, Any]) -> Direction:
    return Direction(
        vector=vector,
        layer=int(info["layer"]),
        site=info["site"],
        position=info["position"],
        method=info["method"],
        label_source=info["label_source"],
        class_means=_float_pair(info["class_means"], "class_means"),
        class_stds=_float_pair(info["class_stds"], "class_stds"),
        model_hash=info.get("model_hash", ""),
        dataset_hash=info.get("dataset_hash", ""),
        resid_norm=info.get("resid_norm"),
        metadata=info.get("metadata", {}),
    )


def check_compatible(direction: Direction, d_model: int, model_hash: str | None = None) -> None:
    """Refuse a direction that does not fit a model or store.

    Args:
        direction: the direction to apply.
        d_model: the model's (or store's) residual width.
        model_hash: the model's file hash; checked when both sides know one.

    Raises:
        ValueError: naming both sizes (or both hashes); `interp.store.compat.check_artifact_fits`.

    Example:
        >>> d = Direction(np.ones(3), 1, "blocks.1.hook_resid_post", "answer", "lda", "pressure")
        >>> check_compatible(d, 3)
    """
    check_artifact_fits(f"direction {direction.key!r}", direction.d_model, direction.model_hash, d_model, model_hash,
                        made="fitted on model", target="the model/store", force_hint=None)
