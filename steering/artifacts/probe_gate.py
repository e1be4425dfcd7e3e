"""`ProbeGate`: steer only where a linear probe reads "pressure" in the residual stream.

The gate reads the residual at its own site (`blocks.{layer}.{site}`),
computes a score `scale * (h . u) + bias` per row and token (for a probe
built with `from_probe`, exactly the probe's logit `h . w + b`) and lets the
intervention through where `score > threshold`:

- `per="token"`: each token is gated on its own score;
- `per="last_prompt"`: each row is gated, for all its tokens (also the
  generated ones), on the score of its last prompt token (needs
  `prompt_lengths` in `steer`).

The gate must read an unsteered residual whose score is known before the
steering acts: its site must run no later than the first steered site (same
layer and `hook_resid_post` is allowed: the gate reads that site before the
steering edits it). `steer` validates this.

Example:
    >>> gate = ProbeGate.from_probe(weight, bias=-0.3, threshold=0.0, layer=8)  # doctest: +SKIP
    >>> with steer(model, vector, -4.0, gate=gate) as s:  # doctest: +SKIP
    ...     model.hf(**batch)
    >>> s.rows_steered()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from interp.errors import InputError
from interp.store.compat import check_artifact_fits
from interp.store.tagged_file import format_tag, read_workbench_file, write_tagged

GATE_FORMAT = format_tag("probe_gate", 1)
#: tags of gate files written before the one tag scheme, still read
GATE_LEGACY_FORMATS = ("workbench-probe-gate/1",)
#: a sweep curve steered through a gate is labelled "<method>+gate"
GATE_SUFFIX = "+gate"

GATE_KINDS = ("hook_resid_pre", "hook_resid_post", "hook_attn_out", "hook_mlp_out")


class _GateHeader(BaseModel):
    """The `workbench` metadata record of a gate file, typed (values are checked again by ProbeGate)."""

    model_config = ConfigDict(extra="ignore")
    bias: float
    threshold: float
    layer: int
    site: str
    scale: float
    per: str
    meta: dict[str, Any] = Field(default_factory=dict)


def _per_token(
    on: torch.Tensor, last_col: torch.Tensor, known: torch.Tensor, held: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    return on, held


def _per_last_prompt(
    on: torch.Tensor, last_col: torch.Tensor, known: torch.Tensor, held: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(on.shape[0], device=on.device)
    held = torch.where(known, on[rows, last_col.clamp(0, on.shape[1] - 1)], held)  # [batch]
    return held.unsqueeze(1).expand_as(on), held


# (token decisions [batch, pos], column in this call of each row's last prompt token [batch],
#  whether that column is in this call [batch], the row decision held so far [batch])
# -> (steer here [batch, pos], row decision to hold for the next calls [batch])
GateFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
GATE_MODES: dict[str, GateFn] = {"token": _per_token, "last_prompt": _per_last_prompt}


@dataclass(frozen=True, eq=False)
class ProbeGate:
    """A linear gate on the residual stream.

    Args:
        direction_unit: unit vector `[d_model]` (the probe's weight direction).
        bias: added to the scaled projection.
        threshold: steer where the score is strictly greater (-inf: always, +inf: never).
        layer: layer of the site read (negative counts from the end).
        site: hook kind read at that layer (default `hook_resid_post`).
        scale: multiplies the projection (`|w|` for a probe, so the score is its logit).
        per: "token" or "last_prompt" (see the module docstring).
        meta: provenance (model hash, training data, held-out rates); saved with the gate.

    Example:
        >>> g = ProbeGate(np.array([1.0, 0.0], dtype=np.float32), bias=0.0, threshold=0.5, layer=1)
        >>> g.score(torch.tensor([[[2.0, 5.0]]])).tolist()
        [[2.0]]
    """

    direction_unit: np.ndarray
    bias: float
    threshold: float
    layer: int
    site: str = "hook_resid_post"
    scale: float = 1.0
    per: str = "token"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        u = np.asarray(self.direction_unit, dtype=np.float32)
        if u.ndim != 1:
            raise ValueError(f"gate direction must be 1-D [d_model], got shape {u.shape}")
        if not np.isfinite(u).all():
            raise ValueError("gate direction holds NaN or inf")
        if abs(float(np.linalg.norm(u)) - 1.0) > 1e-3:
            raise ValueError(
                f"gate direction has norm {np.linalg.norm(u):.4f}, expected a unit vector; "
                "use ProbeGate.from_probe(weight, bias, ...) for a raw probe weight"
            )
        if not (np.isfinite(self.bias) and np.isfinite(self.scale)):
            raise ValueError("gate bias and scale must be finite")
        if np.isnan(self.threshold):
            raise ValueError("gate threshold is NaN")
        if self.site not in GATE_KINDS:
            raise ValueError(f"gate site {self.site!r} unknown: choose from {', '.join(GATE_KINDS)}")
        if self.per not in GATE_MODES:
            raise ValueError(f"gate per={self.per!r} unknown: choose from {', '.join(GATE_MODES)}")
        object.__setattr__(self, "direction_unit", u)

    @classmethod
    def from_probe(
        cls,
        weight: np.ndarray,
        bias: float,
        threshold: float,
        layer: int,
        site: str = "hook_resid_post",
        per: str = "token",
        meta: dict[str, Any] | None = None,
    ) -> ProbeGate:
        """A gate whose score is the probe's logit `h . weight + bias`.

        Example:
            >>> g = ProbeGate.from_probe(np.array([0.0, 3.0]), bias=1.0, threshold=0.0, layer=2)
            >>> g.scale, g.score(torch.tensor([[[1.0, 1.0]]])).item()
            (3.0, 4.0)
        """
        w = np.asarray(weight, dtype=np.float32)
        norm = float(np.linalg.norm(w))
        if norm == 0.0 or not np.isfinite(norm):
            raise ValueError(f"probe weight has norm {norm}: cannot gate on it")
        return cls(w / norm, float(bias), float(threshold), layer, site, norm, per, dict(meta or {}))

    @property
    def d_model(self) -> int:
        return int(self.direction_unit.shape[0])

    def check_compatible(self, d_model: int, model_hash: str | None = None, force: bool = False) -> None:
        """Refuse a model of another width always, one whose weights hash differs from the gate's
        `meta["model_hash"]` (the model it was trained on) unless `force` (`ValueError`).

        The check every artifact shares: `interp.store.compat.check_artifact_fits`.

        Example:
            >>> ProbeGate(np.array([1.0, 0.0], dtype=np.float32), 0.0, 0.0, layer=1).check_compatible(2)
        """
        check_artifact_fits("the gate", self.d_model, str(self.meta.get("model_hash") or ""), d_model,
                            model_hash, made="trained on model file", force=force)

    def score(self, h: torch.Tensor) -> torch.Tensor:
        """Pressure score `[batch, pos]` of residuals `h` `[batch, pos, d_model]`."""
        return self.scorer(h.device, h.dtype)(h)

    def scorer(self, device: torch.device, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
        """`score` with the direction moved to `device`/`dtype` once (for hooks on the hot path)."""
        u = torch.as_tensor(self.direction_unit).to(device=device, dtype=dtype)  # [d_model]
        scale, bias = self.scale, self.bias

        def score(h: torch.Tensor) -> torch.Tensor:
            return scale * (h @ u) + bias  # [batch, pos]

        return score

    def decide(self, score: torch.Tensor) -> torch.Tensor:
        """Where the gate is on `[batch, pos]` bool: the one gate decision (`score > threshold`)."""
        return score > self.threshold

    def decisions(self, scores: Sequence[float] | np.ndarray) -> list[bool]:
        """`decide` on per-prompt scores (e.g. `chat_gate_scores`), as plain bools.

        Example:
            >>> ProbeGate(np.array([1.0, 0.0], dtype=np.float32), 0.0, 0.5, layer=1).decisions([0.2, 0.7])
            [False, True]
        """
        return [bool(on) for on in self.decide(torch.as_tensor(np.asarray(scores, dtype=np.float64)))]

    def header(self) -> dict[str, Any]:
        """Everything but the direction, as JSON-able values."""
        return {"format": GATE_FORMAT, "bias": self.bias, "threshold": self.threshold, "layer": self.layer,
                "site": self.site, "scale": self.scale, "per": self.per, "d_model": self.d_model, "meta": self.meta}

    def to_record(self) -> dict[str, Any]:
        """The whole gate as JSON-able values (the header plus the direction as a list; floats round-trip exactly),
        for a gate carried inside another artifact's metadata (a vector trained with its gate).

        Example:
            >>> g = ProbeGate(np.array([0.6, 0.8], dtype=np.float32), 0.5, 0.0, layer=1, per="last_prompt")
            >>> ProbeGate.from_record(g.to_record()).direction_unit.tolist() == g.direction_unit.tolist()
            True
        """
        return {**self.header(), "direction": [float(x) for x in self.direction_unit]}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ProbeGate:
        """The gate `to_record` wrote (ValueError naming what is wrong)."""
        try:
            h = _GateHeader.model_validate(record)
        except ValidationError as e:
            raise ValueError(f"not a gate record: {' '.join(str(e).split())}") from None
        if record.get("format") != GATE_FORMAT or not isinstance(record.get("direction"), list):
            raise ValueError(f"not a gate record (format {record.get('format')!r}, expected {GATE_FORMAT!r}, and a "
                             "direction list)")
        return cls(np.asarray(record["direction"], dtype=np.float32), h.bias, h.threshold, h.layer, h.site, h.scale,
                   h.per, h.meta)

    def save(self, path: str | Path) -> Path:
        """safetensors: the unit direction as tensor `direction`, the rest as JSON metadata; atomic.

        Example:
            >>> g = ProbeGate(np.array([0.6, 0.8], dtype=np.float32), 0.5, 0.0, layer=1, per="last_prompt")
            >>> import tempfile; p = ProbeGate.save(g, Path(tempfile.mkdtemp()) / "g.safetensors")
            >>> back = ProbeGate.load(p); (back.bias, back.per, back.direction_unit.tolist())
            (0.5, 'last_prompt', [0.6000000238418579, 0.800000011920929])
        """
        return write_tagged(path, {"direction": self.direction_unit}, {"workbench": self.header()})

    @classmethod
    def load(cls, path: str | Path) -> ProbeGate:
        """Read a gate written by `save`; a missing file, foreign file or bad field is named."""
        path = Path(path)
        h, tensors = read_workbench_file(path, "gate", "workbench probe gate", GATE_FORMAT, _GateHeader, GATE_LEGACY_FORMATS)
        if "direction" not in tensors:
            raise InputError("missing", path=path, field="direction", expected="a tensor 'direction' [d_model]")
        try:
            return cls(tensors["direction"], h.bias, h.threshold, h.layer, h.site, h.scale, h.per, h.meta)
        except ValueError as e:
            raise InputError(str(e), path=path) from None
