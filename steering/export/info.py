"""`ExportInfo`: the provenance every export carries, and the checks all formats share.

Every format writes the same record (as JSON in safetensors metadata, as
`workbench.*` keys in a GGUF, as `workbench_export.json` in a folded
checkpoint), so a deployed file says which model it was made for, which site
convention and norm basis its numbers use, and at which strength and layers it
was measured.

Example:
    >>> import numpy as np
    >>> from steering.artifacts.steering_vector import SteeringVector
    >>> v = SteeringVector({3: np.ones(4, dtype=np.float32)}, method="mean_diff", d_model=4)
    >>> info = ExportInfo.for_vector(v, format="gguf", mode="add", strength=2.0)
    >>> info.layer_range, info.strength_folded
    ((3, 3), True)
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from interp.errors import json_type
from steering.artifacts.steering_vector import SteeringVector

if TYPE_CHECKING:
    from steering.artifacts.steerable import Steerable

EXPORT_FORMAT = "workbench.export/1"
SITE_CONVENTION = (
    "blocks.L.hook_resid_post: the output of decoder layer L (0-based) = HF hidden_states[L+1] = llama.cpp direction.L"
)
NORM_BASIS = "raw residual-stream units; resid_norms[L] = mean residual norm at layer L on the vector's data"
# formats whose file holds strength * vector rather than the raw vector
STRENGTH_FOLDED = {"safetensors": False, "gguf": True, "hf-folded": True}
# why a mode can never be exported; modes not named here and not exportable are unknown
UNEXPORTABLE_MODES = {
    "clamp": "clamp mode sets the projection on the direction to a fixed value, which depends on the activation: "
    "no bias, weight edit or llama.cpp control vector reproduces it; export mode add or ablate",
}
MODES = ("add", "ablate")


class ExportError(ValueError):
    """An export or verification the workbench refuses; the message says why and what to do."""


def check_layers_exist(vector: Steerable, n_layers: int, whose: str) -> None:
    """Refuse a vector layer the model lacks: its export would name a block that does not exist (`direction.50`
    for a 30-layer model, which llama.cpp drops or misreads).

    Args:
        vector: the vector to export.
        n_layers: the model's layer count.
        whose: the model, as the message names it ("the model", "the model the vector records (...)").

    Raises:
        ExportError: naming the first layer outside `-n_layers..n_layers-1`.

    Example:
        >>> check_layers_exist(SteeringVector({3: np.ones(4, np.float32)}, method="m", d_model=4), 30, "the model")
    """
    bad = [layer for layer in vector.layers if not -n_layers <= layer < n_layers]
    if bad:
        raise ExportError(f"vector layer {bad[0]} is outside the {n_layers} layers (0..{n_layers - 1}) of {whose}: "
                          f"export the layers it has (--layers)")


@dataclass(frozen=True)
class ExportInfo:
    """Provenance and operating point of one exported steering vector.

    Args:
        format: "safetensors", "gguf" or "hf-folded".
        mode: "add" (strength * v added at blocks.L.hook_resid_post) or "ablate"
            (the unit direction projected out of the residual stream).
        strength: recommended multiplier of the raw vector (add), or of the removed
            part (ablate: 1 = full ablation).
        layers: layers the export acts on.
        positions: token positions the vector was measured with ("all", "generated", ...).
        method, model_hash, arch, dataset_hash, d_model, resid_norms: copied from the vector.
        strength_folded: True where the file holds strength * v (GGUF, folded checkpoint).
        measured: gain/loss measured at this operating point (free JSON), if known.
        site_kind: where the vector is added: `blocks.L.<site_kind>` (hook_resid_post, or hook_attn_out for
            head-level shifts).
        site_convention, norm_basis: the conventions the numbers are in.
        workbench_version: the package version that wrote the export.
    """

    format: str
    mode: str
    strength: float
    layers: tuple[int, ...]
    positions: str
    method: str
    model_hash: str
    arch: str
    dataset_hash: str
    d_model: int
    resid_norms: dict[int, float] = field(default_factory=dict)
    strength_folded: bool = False
    measured: dict[str, Any] | None = None
    site_kind: str = "hook_resid_post"
    site_convention: str = SITE_CONVENTION
    norm_basis: str = NORM_BASIS
    workbench_version: str = ""

    @property
    def layer_range(self) -> tuple[int, int]:
        return (min(self.layers), max(self.layers))

    @classmethod
    def for_vector(
        cls, vector: Steerable, format: str, mode: str, strength: float | None,
        measured: dict[str, Any] | None = None,
    ) -> ExportInfo:
        """The record for exporting `vector` in `format` at `strength`.

        Example:
            >>> ExportInfo.for_vector(v, "safetensors", "add", 4.0).strength_folded  # doctest: +SKIP
            False
        """
        return cls(
            format=format, mode=mode, strength=mode_strength(mode, strength),
            layers=tuple(vector.layers), positions=vector.positions, method=vector.method,
            model_hash=vector.model_hash, arch=vector.arch, dataset_hash=vector.dataset_hash,
            d_model=vector.d_model, resid_norms=dict(vector.resid_norms),
            strength_folded=STRENGTH_FOLDED[format], measured=None if measured is None else dict(measured),
            site_kind=vector.site_kind, workbench_version=_version(),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable, with `export_format` and `layer_range` added for readers."""
        out = asdict(self)
        out["layers"] = list(self.layers)
        out["resid_norms"] = {str(k): v for k, v in self.resid_norms.items()}
        out["layer_range"] = list(self.layer_range)
        out["export_format"] = EXPORT_FORMAT
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportInfo:
        """Inverse of `to_dict`; refuses another export format version.

        Raises:
            ExportError: for a record of another version or with a missing field.
        """
        if not isinstance(data, dict):
            raise ExportError(f"export record is JSON {json_type(data)}, expected an object")
        if data.get("export_format") != EXPORT_FORMAT:
            raise ExportError(f"export record has format {data.get('export_format')!r}, expected {EXPORT_FORMAT!r}")
        try:
            return cls(
                format=data["format"], mode=data["mode"], strength=float(data["strength"]),
                layers=tuple(int(x) for x in data["layers"]), positions=data["positions"], method=data["method"],
                model_hash=data["model_hash"], arch=data["arch"], dataset_hash=data["dataset_hash"],
                d_model=int(data["d_model"]), resid_norms={int(k): float(v) for k, v in data["resid_norms"].items()},
                strength_folded=bool(data["strength_folded"]), measured=data.get("measured"),
                site_kind=str(data.get("site_kind", "hook_resid_post")),
                site_convention=data["site_convention"], norm_basis=data["norm_basis"],
                workbench_version=data.get("workbench_version", ""),
            )
        except KeyError as e:
            raise ExportError(f"export record lacks field {e.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise ExportError(f"export record has a field of the wrong type ({e})") from None


def _version() -> str:
    try:
        return importlib.metadata.version("sycophancy-workbench")
    except importlib.metadata.PackageNotFoundError:
        return ""


def check_mode(mode: str, format: str, supported: tuple[str, ...]) -> None:
    """Refuse a mode the format cannot express, with the reason.

    Raises:
        ExportError: for clamp (never exact) or a mode `format` lacks.
    """
    if mode in UNEXPORTABLE_MODES:
        raise ExportError(UNEXPORTABLE_MODES[mode])
    if mode not in MODES:
        raise ExportError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode not in supported:
        raise ExportError(f"format {format} cannot express mode {mode}; it supports {', '.join(supported)}")


def mode_strength(mode: str, strength: float | None) -> float:
    """The strength an export uses: add needs one; ablate defaults to 1 (full ablation).

    For ablate the strength multiplies the removed part, as in `steering.apply.interventions`:
    x - s (x.u) u, so 1 removes the direction and 2 reflects it.

    Raises:
        ExportError: for add without a strength.
    """
    if strength is not None:
        return float(strength)
    if mode == "add":
        raise ExportError("mode add needs a strength (--strength S)")
    return 1.0


def check_residual_site(vector: SteeringVector, format: str) -> None:
    """Additive exports act on `hook_resid_post` only (the site llama.cpp and a down_proj bias reach)."""
    if vector.site_kind != "hook_resid_post":
        raise ExportError(
            f"format {format} adds at blocks.L.hook_resid_post; this vector acts on {vector.site_kind}"
        )


def ablation_direction(vector: SteeringVector) -> np.ndarray:
    """The unit direction an ablation projects out: the vector's only layer, normalised.

    Raises:
        ExportError: for a vector with several layers (pick one with `select`) or a zero vector.
    """
    if len(vector.layers) != 1:
        raise ExportError(
            f"ablation projects one direction out at every layer; this vector has layers {vector.layers}: "
            "pick one (--layers L)"
        )
    raw = vector.directions[vector.layers[0]].astype(np.float64)
    norm = float(np.linalg.norm(raw))
    if norm == 0.0:
        raise ExportError("cannot ablate a zero vector")
    return raw / norm
