"""`Steerable`: what the sweep, `workbench steer` and the exports need of a trained intervention.

Two artifacts implement it: `SteeringVector` (a raw vector per layer, `steering.artifacts.steering_vector`) and
`LowRankEdit` (`h + s R^T (W h + b - R h)` per layer, `steering.artifacts.lowrank_edit`). A sweep cell holds either and asks
it for the bytes of its cell key and the norm its fits use as x axis; how each is applied in the forward pass is
`steering.apply.row_steering` (the artifacts hold data, the apply package runs it). `load_steerable` reads either from
a workbench file, by its format tag.

Example:
    >>> artifact = load_steerable("artifacts/x/sweep/vectors/lowrank-correct-2.safetensors")  # doctest: +SKIP
    >>> with row_steering(artifact, (12,), "generated").context(model, [1.0], [40]):  # doctest: +SKIP
    ...     model.hf(**batch_of_one)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from interp.store.tagged_file import read_tagged
from steering.artifacts.head_ablation import HEAD_ABLATION_FORMAT, HeadAblation
from steering.artifacts.lowrank_edit import LOWRANK_FORMAT, LowRankEdit
from steering.artifacts.steering_vector import SteeringVector

if TYPE_CHECKING:
    import numpy as np



class Steerable(Protocol):
    """A trained intervention with its provenance (a `SteeringVector` or a `LowRankEdit`)."""

    @property
    def method(self) -> str: ...

    @property
    def d_model(self) -> int: ...

    @property
    def site_kind(self) -> str: ...

    @property
    def model_hash(self) -> str: ...

    @property
    def arch(self) -> str: ...

    @property
    def dataset_hash(self) -> str: ...

    @property
    def positions(self) -> str: ...

    @property
    def resid_norms(self) -> dict[int, float]: ...

    @property
    def meta(self) -> dict[str, Any]: ...

    @property
    def layers(self) -> list[int]: ...

    @property
    def why_not_a_vector(self) -> str:
        """"" for a constant vector per layer; else why a runtime that adds one (llama.cpp, a bias) cannot hold it."""
        ...

    def norms(self) -> dict[int, float]:
        """Per layer, the size the reports show (a vector's norm, an edit's mean norm at strength 1)."""
        ...

    def cell_norm(self, layers: Sequence[int]) -> float:
        """The norm at strength 1 of a cell steering `layers` (the x axis of the fits)."""
        ...

    def content_bytes(self, layers: Sequence[int]) -> bytes:
        """The bytes a cell's key hashes (method and tensors at `layers`)."""
        ...

    def select(self, layers: list[int]) -> Steerable: ...

    def __mul__(self, scale: float) -> Steerable:
        """The intervention at strength `scale`, folded in (applied at strength 1)."""
        ...

    def with_record(self, *, method: str | None = None, positions: str | None = None,
                    meta: dict[str, Any] | None = None) -> Steerable: ...

    def check_strength(self, strength: float) -> None: ...

    def check_compatible(self, d_model: int, model_hash: str | None = None, force: bool = False) -> None: ...

    def header(self) -> dict[str, Any]: ...

    def tensors(self) -> dict[str, np.ndarray]: ...

    def save(self, path: str | Path) -> Path: ...


def _format(path: str | Path) -> object:
    records, _ = read_tagged(path, "vector", load_tensors=False)
    header = records.get("workbench")
    return header.get("format") if isinstance(header, dict) else None


def is_intervention_file(path: str | Path) -> bool:
    """Whether a safetensors file holds a workbench intervention that is no vector (a low-rank edit or a head
    ablation; by its format tag, metadata only)."""
    return _format(path) in (LOWRANK_FORMAT, HEAD_ABLATION_FORMAT)


def load_steerable(path: str | Path) -> Steerable:
    """A workbench artifact file (a steering vector, a low-rank edit or a head ablation, plain or exported), by its
    format tag.

    Raises:
        InputError: a missing file, another kind of file, or a bad field (named).

    Example:
        >>> load_steerable("artifacts/x/sweep/vectors/learned-correct.safetensors").layers  # doctest: +SKIP
        [12]
    """
    tag = _format(path)
    if tag == LOWRANK_FORMAT:
        return LowRankEdit.load(path)
    if tag == HEAD_ABLATION_FORMAT:
        return HeadAblation.load(path)
    return SteeringVector.load(path)
