"""`SteeringVector`: raw residual-stream directions per layer, with their provenance.

Vectors are stored raw (residual-stream units): `strength` multiplies the raw
vector, and `resid_norms` (the mean residual norm at each layer on the data
it came from) lets the app show a strength as a fraction of the residual.
Frozen; derive new ones with algebra (`2 * v`, `-v`, `v + w`) or
`dataclasses.replace`.

Example:
    >>> import numpy as np
    >>> v = SteeringVector({3: np.ones(4, dtype=np.float32)}, method="mean_diff", d_model=4)
    >>> (2 * v).norms()[3]
    4.0
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from interp.errors import InputError
from interp.store.compat import check_artifact_fits
from interp.store.tagged_file import format_tag, read_workbench_file, write_tagged

if TYPE_CHECKING:
    pass

FORMAT = format_tag("steering_vector", 1)
#: the largest steered entry accepted: beyond it a model's float32 activations overflow (3.4e38) into inf/NaN
MAX_STEERED = 1e30
_LAYER_TENSOR = re.compile(r"^layer\.(-?\d+)$")


class VectorMismatchError(ValueError):
    """A vector used with a model (or store) it does not fit."""


class _Header(BaseModel):
    """The `workbench` metadata record of a vector file: every field `load` reads, typed."""

    model_config = ConfigDict(extra="ignore")
    format: str
    method: str = Field(min_length=1)
    d_model: int = Field(gt=0)
    site_kind: str = Field(min_length=1)
    model_hash: str
    arch: str
    dataset_hash: str
    resid_norms: dict[int, float]
    positions: str = Field(pattern=r"^(all|prompt|generated)(,(all|prompt|generated))*$")
    meta: dict[str, Any]


@dataclass(frozen=True, eq=False)
class SteeringVector:
    """Per-layer raw directions added at `blocks.L.<site_kind>`.

    Args:
        directions: layer -> raw vector [d_model] (float32).
        method: how it was made ("caa", "mean_diff", "logreg", "lda", "pca_diff", ...).
        d_model: residual width of the model it belongs to.
        site_kind: TransformerLens hook kind it acts on (`hook_resid_post`).
        model_hash: sha256 of the model's weights file.
        arch: HF model_type.
        dataset_hash: hash of the examples it was built from.
        resid_norms: layer -> mean residual norm on that data.
        positions: token positions it was measured with ("all", "prompt", "generated").
        meta: free JSON (train split ids hash, label source, measured gain/loss, ...).
    """

    directions: dict[int, np.ndarray]
    method: str
    d_model: int
    site_kind: str = "hook_resid_post"
    model_hash: str = ""
    arch: str = ""
    dataset_hash: str = ""
    resid_norms: dict[int, float] = field(default_factory=dict)
    positions: str = "all"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.directions:
            raise ValueError("a SteeringVector needs at least one layer")
        clean = {}
        for layer, vec in self.directions.items():
            arr = np.asarray(vec, dtype=np.float32)
            if arr.shape != (self.d_model,):
                raise VectorMismatchError(
                    f"layer {layer}: vector has shape {arr.shape}, expected ({self.d_model},) for d_model={self.d_model}"
                )
            if not np.isfinite(arr).all():
                raise ValueError(f"layer {layer}: vector holds NaN or inf")
            clean[int(layer)] = arr
        object.__setattr__(self, "directions", dict(sorted(clean.items())))

    def __eq__(self, other: object) -> bool:
        """Exact equality: same header and bit-identical tensors."""
        if not isinstance(other, SteeringVector):
            return NotImplemented
        return self.header() == other.header() and all(
            np.array_equal(self.directions[k], other.directions[k]) for k in self.directions
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def layers(self) -> list[int]:
        return list(self.directions)

    def norms(self) -> dict[int, float]:
        return {layer: float(np.linalg.norm(v)) for layer, v in self.directions.items()}

    def relative_norms(self) -> dict[int, float]:
        """Vector norm as a fraction of the mean residual norm at its layer (NaN if unknown)."""
        return {
            layer: n / self.resid_norms[layer] if self.resid_norms.get(layer) else float("nan")
            for layer, n in self.norms().items()
        }

    @property
    def why_not_a_vector(self) -> str:
        """"": a constant vector per layer, which every export can hold (a low-rank edit says why it is not)."""
        return ""

    def cell_norm(self, layers: Sequence[int]) -> float:
        """The norm a sweep cell steering `layers` records: of the vectors at `layers`, concatenated."""
        return float(np.linalg.norm(np.concatenate([self.directions[x].astype(np.float64) for x in layers])))

    def content_bytes(self, layers: Sequence[int]) -> bytes:
        """What a sweep cell's key hashes: the method and the raw vectors at `layers`."""
        return self.method.encode() + b"".join(self.directions[layer].tobytes() for layer in layers)

    def with_record(self, *, method: str | None = None, positions: str | None = None,
                    meta: dict[str, Any] | None = None) -> SteeringVector:
        """The same vector with another method name, positions record or meta."""
        return replace(self, method=self.method if method is None else method,
                       positions=self.positions if positions is None else positions,
                       meta=self.meta if meta is None else meta)

    def unit(self) -> SteeringVector:
        return replace(self, directions={k: v / max(np.linalg.norm(v), 1e-12) for k, v in self.directions.items()})

    def select(self, layers: list[int]) -> SteeringVector:
        missing = [layer for layer in layers if layer not in self.directions]
        if missing:
            raise ValueError(f"vector has no layer {missing[0]} (it has {self.layers})")
        return replace(self, directions={layer: self.directions[layer] for layer in layers})

    def __mul__(self, scale: float) -> SteeringVector:
        return replace(self, directions={k: v * np.float32(scale) for k, v in self.directions.items()})

    __rmul__ = __mul__

    def __neg__(self) -> SteeringVector:
        return self * -1.0

    def __add__(self, other: SteeringVector) -> SteeringVector:
        if other.d_model != self.d_model:
            raise VectorMismatchError(f"cannot add vectors of d_model {self.d_model} and {other.d_model}")
        layers = sorted(set(self.directions) | set(other.directions))
        zero = np.zeros(self.d_model, dtype=np.float32)
        return replace(self, method=f"{self.method}+{other.method}",
                       directions={k: self.directions.get(k, zero) + other.directions.get(k, zero) for k in layers})

    def check_strength(self, strength: float) -> None:
        """Refuse a non-finite strength, or one whose steered vector would overflow float32 activations.

        Example:
            >>> SteeringVector({1: np.ones(2, np.float32)}, method="m", d_model=2).check_strength(4.0)
        """
        largest = max(float(np.abs(v).max()) for v in self.directions.values())
        if not np.isfinite(strength) or abs(strength) * largest > MAX_STEERED:
            raise InputError(f"{strength:g} times the vector (largest entry {largest:.3g}) overflows float32 activations",
                             path="--strength", expected=f"a finite |strength| below {MAX_STEERED / max(largest, 1e-30):.3g}")

    def check_compatible(self, d_model: int, model_hash: str | None = None, force: bool = False) -> None:
        """Refuse a model of another width always, another weights hash unless `force` (`VectorMismatchError`).

        The check every artifact shares: `interp.store.compat.check_artifact_fits`.
        """
        check_artifact_fits("vector", self.d_model, self.model_hash, d_model, model_hash, force=force,
                            force_hint="pass force=True (--force) to use it anyway", error=VectorMismatchError)

    def header(self) -> dict[str, Any]:
        """Everything but the tensors, JSON-serialisable."""
        return {
            "format": FORMAT,
            "method": self.method,
            "d_model": self.d_model,
            "site_kind": self.site_kind,
            "model_hash": self.model_hash,
            "arch": self.arch,
            "dataset_hash": self.dataset_hash,
            "resid_norms": {str(k): v for k, v in self.resid_norms.items()},
            "positions": self.positions,
            "layers": self.layers,
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> Path:
        """safetensors: tensors `layer.{L}` plus the header as JSON metadata; atomic."""
        return write_tagged(path, self.tensors(), {"workbench": self.header()})

    def tensors(self) -> dict[str, np.ndarray]:
        """The file's tensors: `layer.{L}` -> the raw vector at layer L."""
        return {f"layer.{k}": v for k, v in self.directions.items()}

    @classmethod
    def load(cls, path: str | Path) -> SteeringVector:
        path = Path(path)
        h, tensors = read_workbench_file(path, "vector", "workbench steering vector", FORMAT, _Header)
        directions = {}
        for name, value in tensors.items():
            if name.startswith("gate."):  # the gate a native export carries (steering.export.native)
                continue
            m = _LAYER_TENSOR.match(name)
            if not m:
                raise InputError("unexpected tensor", path=path, field=name, expected="tensors named layer.<L>")
            directions[int(m.group(1))] = value
        try:
            return cls(directions=directions, method=h.method, d_model=h.d_model, site_kind=h.site_kind,
                       model_hash=h.model_hash, arch=h.arch, dataset_hash=h.dataset_hash,
                       resid_norms=h.resid_norms, positions=h.positions, meta=h.meta)
        except ValueError as e:
            raise InputError(str(e), path=path) from None
