"""`LowRankEdit`: a learned low-rank intervention on the residual stream (LoReFT-style), with its provenance.

At `blocks.L.hook_resid_post`, at the steered positions, with strength `s`:

    h <- h + s * R^T (W h + b - R h)

`R` `[r, d_model]` has orthonormal rows (the subspace edited), `W` `[r, d_model]` and `b` `[r]` say what the
subspace coordinates become (Wu et al. 2024, ReFT). `W = R, b = 0` is exactly no edit; strength 0 is exactly
unsteered, strength 1 applies the edit as trained (unlike a learned vector, which is saved negated: there is no
"direction toward sycophancy" to point along). Strength folds in exactly: `s * edit` is the edit with
`W' = R + s (W - R)`, `b' = s b` (`edit * s`). The edit depends on `h`, so it is no constant vector: llama.cpp's
control vectors and a folded bias cannot hold it (the exports refuse it, `why_not_a_vector`); the workbench's
hooks apply it (`steering.apply.lowrank_steer`), in the sweep's cells and in `workbench steer`. Serving it through
the OpenAI server is not supported.

`edit_norms[L]` is the mean norm of the edit at strength 1 on the training rows (measured on the validation
groups when the best step was chosen): what a sweep's fits use as the x axis, as they use a vector's norm.

File: safetensors with tensors `rotation.L`, `weight.L`, `bias.L` and the header under the `workbench` key,
format tag `workbench.lowrank_edit/1`; a native export adds its record (`steering.export.native`).

Example:
    >>> R = np.eye(4, dtype=np.float32)[:1]
    >>> edit = LowRankEdit({3: LayerEdit(R, R.copy(), np.zeros(1, np.float32))}, method="lowrank", d_model=4)
    >>> edit.layers, edit.rank, edit.select([3]).is_identity()
    ([3], 1, True)
"""

from __future__ import annotations

import json
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
from steering.artifacts.steering_vector import MAX_STEERED, VectorMismatchError

if TYPE_CHECKING:
    pass

LOWRANK_FORMAT = format_tag("lowrank_edit", 1)
#: largest deviation of R R^T from the identity accepted as orthonormal rows
ORTHONORMAL_TOL = 1e-4
FORMULA = "h + s * R^T (W h + b - R h) at blocks.L.hook_resid_post"
_TENSOR = re.compile(r"^(rotation|weight|bias)\.(-?\d+)$")


@dataclass(frozen=True, eq=False)
class LayerEdit:
    """One layer's edit: `rotation` R `[r, d]` (orthonormal rows), `weight` W `[r, d]`, `bias` b `[r]`.

    Example:
        >>> R = np.eye(3, dtype=np.float32)[:2]
        >>> LayerEdit(R, 2 * R, np.ones(2, np.float32)).scaled(0.5).bias.tolist()
        [0.5, 0.5]
    """

    rotation: np.ndarray
    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        r, w, b = (np.asarray(x, dtype=np.float32) for x in (self.rotation, self.weight, self.bias))
        if r.ndim != 2 or r.shape[0] < 1 or r.shape[0] > r.shape[1]:
            raise ValueError(f"rotation must be [rank, d_model] with 1 <= rank <= d_model, got shape {r.shape}")
        if w.shape != r.shape or b.shape != (r.shape[0],):
            raise ValueError(f"weight {w.shape} and bias {b.shape} must be {r.shape} and ({r.shape[0]},)")
        if not (np.isfinite(r).all() and np.isfinite(w).all() and np.isfinite(b).all()):
            raise ValueError("low-rank edit holds NaN or inf")
        gram = r.astype(np.float64) @ r.astype(np.float64).T
        off = float(np.abs(gram - np.eye(r.shape[0])).max())
        if off > ORTHONORMAL_TOL:
            raise ValueError(f"rotation rows are not orthonormal (R R^T differs from I by {off:.2g})")
        for name, value in (("rotation", r), ("weight", w), ("bias", b)):
            object.__setattr__(self, name, value)

    @property
    def rank(self) -> int:
        return int(self.rotation.shape[0])

    def scaled(self, strength: float) -> LayerEdit:
        """The edit `strength` times as large: W' = R + s (W - R), b' = s b (exact in real arithmetic)."""
        s = np.float32(strength)
        return LayerEdit(self.rotation, self.rotation + s * (self.weight - self.rotation), s * self.bias)


class _Header(BaseModel):
    """The `workbench` metadata record of a low-rank edit file: every field `load` reads, typed."""

    model_config = ConfigDict(extra="ignore")
    format: str
    method: str = Field(min_length=1)
    d_model: int = Field(gt=0)
    site_kind: str = Field(pattern=r"^hook_resid_post$")
    model_hash: str
    arch: str
    dataset_hash: str
    resid_norms: dict[int, float]
    edit_norms: dict[int, float]
    positions: str = Field(pattern=r"^(all|prompt|generated)(,(all|prompt|generated))*$")
    meta: dict[str, Any]


@dataclass(frozen=True, eq=False)
class LowRankEdit:
    """Per-layer low-rank edits applied at `blocks.L.hook_resid_post` (module docstring).

    Args:
        edits: layer -> `LayerEdit`.
        method: how it was made (e.g. "lowrank:correct%2").
        d_model: residual width.
        site_kind: always "hook_resid_post".
        model_hash, arch, dataset_hash: the model it was trained on and its training pairs' hash.
        resid_norms: layer -> mean residual norm on the training rows.
        edit_norms: layer -> mean norm of the edit at strength 1 on the training rows (NaN: unknown).
        positions: the positions rules it was trained and measured at.
        meta: provenance (training config, split, history, ...).
    """

    edits: dict[int, LayerEdit]
    method: str
    d_model: int
    site_kind: str = "hook_resid_post"
    model_hash: str = ""
    arch: str = ""
    dataset_hash: str = ""
    resid_norms: dict[int, float] = field(default_factory=dict)
    edit_norms: dict[int, float] = field(default_factory=dict)
    positions: str = "generated"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.edits:
            raise ValueError("a LowRankEdit needs at least one layer")
        if self.site_kind != "hook_resid_post":
            raise ValueError(f"a low-rank edit acts on hook_resid_post, not {self.site_kind}")
        for layer, edit in self.edits.items():
            if edit.rotation.shape[1] != self.d_model:
                raise VectorMismatchError(f"layer {layer}: edit has width {edit.rotation.shape[1]}, expected "
                                          f"d_model={self.d_model}")
        object.__setattr__(self, "edits", {int(k): v for k, v in sorted(self.edits.items())})

    def __eq__(self, other: object) -> bool:
        """Exact equality: the same header as JSON (as saved: tuples are lists) and bit-identical tensors."""
        if not isinstance(other, LowRankEdit):
            return NotImplemented
        mine, theirs = self.tensors(), other.tensors()
        same = json.dumps(self.header(), sort_keys=True) == json.dumps(other.header(), sort_keys=True)
        return same and mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in mine)

    __hash__ = None  # type: ignore[assignment]

    @property
    def layers(self) -> list[int]:
        return list(self.edits)

    @property
    def rank(self) -> int:
        """The largest rank over the layers (all layers of a trained edit share one)."""
        return max(edit.rank for edit in self.edits.values())

    @property
    def why_not_a_vector(self) -> str:
        """Why no runtime that adds one constant vector per layer (llama.cpp, a folded bias) can hold it."""
        return f"a low-rank edit ({FORMULA}) depends on the residual h, it is no constant vector"

    def is_identity(self) -> bool:
        """Whether every layer's edit is exactly zero (W = R and b = 0)."""
        return all(np.array_equal(e.weight, e.rotation) and not e.bias.any() for e in self.edits.values())

    def norms(self) -> dict[int, float]:
        """Mean edit norm at strength 1 per layer (the x axis of a sweep's fits; NaN where unknown)."""
        return {layer: float(self.edit_norms.get(layer, float("nan"))) for layer in self.edits}

    def cell_norm(self, layers: Sequence[int]) -> float:
        """The norm a sweep cell steering `layers` records: the root of the summed squared mean edit norms."""
        norms = self.norms()
        return float(np.sqrt(sum(norms[layer] ** 2 for layer in layers)))

    def content_bytes(self, layers: Sequence[int]) -> bytes:
        """What a sweep cell's key hashes: the method and the edit's tensors at `layers`."""
        parts = [self.method.encode()]
        for layer in layers:
            e = self.edits[layer]
            parts += [e.rotation.tobytes(), e.weight.tobytes(), e.bias.tobytes()]
        return b"".join(parts)

    def select(self, layers: list[int]) -> LowRankEdit:
        missing = [layer for layer in layers if layer not in self.edits]
        if missing:
            raise ValueError(f"edit has no layer {missing[0]} (it has {self.layers})")
        return replace(self, edits={layer: self.edits[layer] for layer in layers})

    def __mul__(self, scale: float) -> LowRankEdit:
        """The edit at strength `scale`, folded into W and b (its edit norms scale by |scale|)."""
        return replace(self, edits={k: e.scaled(scale) for k, e in self.edits.items()},
                       edit_norms={k: abs(float(scale)) * v for k, v in self.edit_norms.items()})

    __rmul__ = __mul__

    def with_record(self, *, method: str | None = None, positions: str | None = None,
                    meta: dict[str, Any] | None = None) -> LowRankEdit:
        """The same edit with another method name, positions record or meta."""
        return replace(self, method=self.method if method is None else method,
                       positions=self.positions if positions is None else positions,
                       meta=self.meta if meta is None else meta)

    def check_strength(self, strength: float) -> None:
        """Refuse a non-finite strength, or one whose edit would overflow float32 activations."""
        largest = max(max(float(np.abs(e.weight - e.rotation).max()), float(np.abs(e.bias).max()))
                      for e in self.edits.values())
        if not np.isfinite(strength) or abs(strength) * largest > MAX_STEERED:
            raise InputError(f"{strength:g} times the edit (largest entry {largest:.3g}) overflows float32 "
                             "activations", path="--strength", expected="a smaller finite strength")

    def check_compatible(self, d_model: int, model_hash: str | None = None, force: bool = False) -> None:
        """Refuse a model of another width always, another weights hash unless `force` (`VectorMismatchError`)."""
        check_artifact_fits("low-rank edit", self.d_model, self.model_hash, d_model, model_hash, force=force,
                            force_hint="pass force=True (--force) to use it anyway", error=VectorMismatchError)

    def header(self) -> dict[str, Any]:
        """Everything but the tensors, JSON-serialisable."""
        return {
            "format": LOWRANK_FORMAT, "formula": FORMULA, "method": self.method, "d_model": self.d_model,
            "site_kind": self.site_kind, "model_hash": self.model_hash, "arch": self.arch,
            "dataset_hash": self.dataset_hash, "rank": self.rank,
            "resid_norms": {str(k): v for k, v in self.resid_norms.items()},
            "edit_norms": {str(k): v for k, v in self.edit_norms.items()},
            "positions": self.positions, "layers": self.layers, "meta": self.meta,
        }

    def tensors(self) -> dict[str, np.ndarray]:
        """The file's tensors: `rotation.L`, `weight.L`, `bias.L`."""
        out = {}
        for layer, e in self.edits.items():
            out[f"rotation.{layer}"], out[f"weight.{layer}"], out[f"bias.{layer}"] = e.rotation, e.weight, e.bias
        return out

    def save(self, path: str | Path) -> Path:
        """safetensors: the tensors plus the header as JSON metadata; atomic."""
        return write_tagged(path, self.tensors(), {"workbench": self.header()})

    @classmethod
    def load(cls, path: str | Path) -> LowRankEdit:
        """Read an edit written by `save` (or a native export of one); a bad file or field is named.

        Example:
            >>> edit = LowRankEdit.load("artifacts/x/sweep/vectors/lowrank-correct-2.safetensors")  # doctest: +SKIP
        """
        path = Path(path)
        h, tensors = read_workbench_file(path, "low-rank edit", "workbench low-rank edit", LOWRANK_FORMAT, _Header)
        parts: dict[int, dict[str, np.ndarray]] = {}
        for name, value in tensors.items():
            m = _TENSOR.match(name)
            if not m:
                raise InputError("unexpected tensor", path=path, field=name,
                                 expected="tensors named rotation.<L>, weight.<L>, bias.<L>")
            parts.setdefault(int(m.group(2)), {})[m.group(1)] = value
        try:
            edits = {}
            for layer, p in parts.items():
                if set(p) != {"rotation", "weight", "bias"}:
                    raise ValueError(f"layer {layer} lacks {sorted({'rotation', 'weight', 'bias'} - set(p))}")
                edits[layer] = LayerEdit(p["rotation"], p["weight"], p["bias"])
            return cls(edits, method=h.method, d_model=h.d_model, site_kind=h.site_kind, model_hash=h.model_hash,
                       arch=h.arch, dataset_hash=h.dataset_hash, resid_norms=h.resid_norms,
                       edit_norms=h.edit_norms, positions=h.positions, meta=h.meta)
        except ValueError as e:
            raise InputError(str(e), path=path) from None
