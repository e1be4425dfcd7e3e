"""A head ablation: attention heads whose output is moved to a fixed mean, `z_h <- z_h + s * (mean_h - z_h)`.

Made by the `copyheads` family (`steering.methods.copy_heads`): the heads that copy a suggested answer into the
answer position, ranked on the train split, with their mean output on prompts that suggest nothing. Strength 1
replaces each head's output (`blocks.L.attn.hook_z`, o_proj's input) by its mean at the steered positions,
strength 0 leaves the model exactly unchanged, values between interpolate.

A cell of a sweep names one layer, its *anchor*: the heads sit at that layer or after it (the gate of the cell
reads at or before it). `layers` is `[anchor]`; `heads` lists (layer, head) pairs.

Saved as safetensors: tensor `means` `[k, d_head]` (row i: head i of `heads`), the header as JSON metadata. No
runtime that adds a constant vector (llama.cpp, a folded bias) can hold it (`why_not_a_vector`).

Example:
    >>> import numpy as np
    >>> a = HeadAblation(12, ((23, 0), (29, 1)), np.zeros((2, 64), np.float32), method="copyheads@2", d_model=576,
    ...                  n_heads=9)
    >>> a.layers, a.head_names
    ([12], ['L23H0', 'L29H1'])
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from interp.errors import InputError
from interp.store.compat import check_artifact_fits
from interp.store.tagged_file import format_tag, read_workbench_file, write_tagged
from steering.artifacts.steering_vector import VectorMismatchError

HEAD_ABLATION_FORMAT = format_tag("head_ablation", 1)
FORMULA = "z_h + s * (mean_h - z_h) at blocks.L.attn.hook_z for each listed head"


class _Header(BaseModel):
    """The `workbench` metadata record of a head-ablation file: every field `load` reads, typed."""

    model_config = ConfigDict(extra="ignore")
    format: str
    method: str = Field(min_length=1)
    anchor: int = Field(ge=0)
    heads: list[tuple[int, int]] = Field(min_length=1)
    d_model: int = Field(gt=0)
    n_heads: int = Field(gt=0)
    scale: float
    model_hash: str
    arch: str
    dataset_hash: str
    positions: str = Field(pattern=r"^(all|prompt|generated)(,(all|prompt|generated))*$")
    meta: dict[str, Any]


@dataclass(frozen=True, eq=False)
class HeadAblation:
    """Heads moved to their mean output (module docstring).

    Args:
        anchor: the layer a sweep cell names (every head sits at it or later).
        heads: (layer, head) pairs, ranked (first: the strongest).
        means: `[len(heads), d_head]` the mean output `z_h` each head is moved to.
        method: how it was made (e.g. "copyheads@10").
        d_model, n_heads: the model's width and heads per layer (d_head = means' width).
        scale: a strength folded in (1: as made; an export at strength s stores s).
        model_hash, arch, dataset_hash: the model and the training pairs it was made from.
        positions: the positions rules it was measured at.
        meta: provenance (ranking scores, split, seed, ...).
    """

    anchor: int
    heads: tuple[tuple[int, int], ...]
    means: np.ndarray
    method: str
    d_model: int
    n_heads: int
    scale: float = 1.0
    model_hash: str = ""
    arch: str = ""
    dataset_hash: str = ""
    positions: str = "generated"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        means = np.asarray(self.means, dtype=np.float32)
        heads = tuple((int(layer), int(head)) for layer, head in self.heads)
        if not heads:
            raise ValueError("a head ablation needs at least one head")
        if means.ndim != 2 or means.shape[0] != len(heads):
            raise ValueError(f"means must be [{len(heads)} heads, d_head], got shape {means.shape}")
        if not np.isfinite(means).all() or not np.isfinite(self.scale):
            raise ValueError("head ablation holds NaN or inf")
        bad = [(layer, head) for layer, head in heads if layer < self.anchor or not 0 <= head < self.n_heads]
        if bad:
            raise ValueError(f"head L{bad[0][0]}H{bad[0][1]}: heads sit at or after the anchor layer {self.anchor}, "
                             f"numbered below {self.n_heads}")
        if means.shape[1] * self.n_heads != self.d_model:
            raise VectorMismatchError(f"{self.n_heads} heads of width {means.shape[1]} do not make d_model "
                                      f"{self.d_model}")
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "heads", heads)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HeadAblation):
            return NotImplemented
        same = json.dumps(self.header(), sort_keys=True) == json.dumps(other.header(), sort_keys=True)
        return same and np.array_equal(self.means, other.means)

    __hash__ = None  # type: ignore[assignment]

    @property
    def site_kind(self) -> str:
        return "attn.hook_z"

    @property
    def d_head(self) -> int:
        return int(self.means.shape[1])

    @property
    def layers(self) -> list[int]:
        return [self.anchor]

    @property
    def resid_norms(self) -> dict[int, float]:
        return {}

    @property
    def head_names(self) -> list[str]:
        return [f"L{layer}H{head}" for layer, head in self.heads]

    @property
    def why_not_a_vector(self) -> str:
        return f"a head ablation ({FORMULA}) replaces what the heads read from the input, it is no constant vector"

    def norms(self) -> dict[int, float]:
        """Strength is the share of each head's output replaced: the fits' x axis is the strength itself."""
        return {self.anchor: abs(self.scale)}

    def cell_norm(self, layers: Sequence[int]) -> float:
        return abs(self.scale)

    def content_bytes(self, layers: Sequence[int]) -> bytes:
        return b"".join([self.method.encode(), repr((self.anchor, self.heads, self.scale)).encode(),
                         self.means.tobytes()])

    def select(self, layers: list[int]) -> HeadAblation:
        if list(layers) != [self.anchor]:
            raise ValueError(f"a head ablation is steered as one cell at its anchor layer {self.anchor}, not {layers}")
        return self

    def __mul__(self, scale: float) -> HeadAblation:
        return replace(self, scale=self.scale * float(scale))

    __rmul__ = __mul__

    def with_record(self, *, method: str | None = None, positions: str | None = None,
                    meta: dict[str, Any] | None = None) -> HeadAblation:
        return replace(self, method=self.method if method is None else method,
                       positions=self.positions if positions is None else positions,
                       meta=self.meta if meta is None else meta)

    def check_strength(self, strength: float) -> None:
        """Refuse a non-finite strength or one beyond +-10 (1 replaces the output; far beyond it is no ablation)."""
        if not np.isfinite(strength) or abs(strength * self.scale) > 10:
            raise InputError(f"{strength:g} times a head ablation at scale {self.scale:g}", path="--strength",
                             expected="a finite strength, 1 replacing the heads' output by their mean")

    def check_compatible(self, d_model: int, model_hash: str | None = None, force: bool = False) -> None:
        check_artifact_fits("head ablation", self.d_model, self.model_hash, d_model, model_hash, force=force,
                            force_hint="pass force=True (--force) to use it anyway", error=VectorMismatchError)

    def header(self) -> dict[str, Any]:
        return {"format": HEAD_ABLATION_FORMAT, "formula": FORMULA, "method": self.method, "anchor": self.anchor,
                "heads": [list(h) for h in self.heads], "d_model": self.d_model, "n_heads": self.n_heads,
                "scale": self.scale, "model_hash": self.model_hash, "arch": self.arch,
                "dataset_hash": self.dataset_hash, "positions": self.positions, "layers": self.layers,
                "meta": self.meta}

    def tensors(self) -> dict[str, np.ndarray]:
        return {"means": self.means}

    def save(self, path: str | Path) -> Path:
        """safetensors: `means` plus the header as JSON metadata; atomic."""
        return write_tagged(path, self.tensors(), {"workbench": self.header()})

    @classmethod
    def load(cls, path: str | Path) -> HeadAblation:
        """Read a file written by `save` (or a native export of one); a bad file or field is named."""
        path = Path(path)
        h, tensors = read_workbench_file(path, "head ablation", "workbench head ablation", HEAD_ABLATION_FORMAT,
                                         _Header)
        if "means" not in tensors:
            raise InputError("missing", path=path, field="means", expected="a tensor 'means' [heads, d_head]")
        try:
            return cls(h.anchor, tuple(h.heads), tensors["means"], h.method, h.d_model, h.n_heads, h.scale,
                       h.model_hash, h.arch, h.dataset_hash, h.positions, h.meta)
        except ValueError as e:
            raise InputError(str(e), path=path) from None
