"""How a trained intervention runs in the forward pass, whatever its artifact: `row_steering`.

A `SteeringVector` runs as a `SteerSpec` (`steering.apply.spec`: add, ablate or clamp, with an optional gate);
a `LowRankEdit` as a `LowRankSpec` (`steering.apply.lowrank_steer`: the edit as written, gated by per-row
strengths); a `HeadAblation` as a `HeadAblationSpec` (`steering.apply.head_ablation_steer`, the same way). Both give a `RowSteering`: the context a batch runs in, one strength per row. The sweep's cells,
`workbench steer` and the exports' checks ask here, so the artifacts themselves stay data.

Example:
    >>> spec = row_steering(vector, (12,), "generated")  # doctest: +SKIP
    >>> with spec.context(model, [-1.0, 0.0], prompt_tokens=[40, 38]):  # doctest: +SKIP
    ...     model.hf(**batch_of_two)
"""

from __future__ import annotations

from collections.abc import Sequence

from steering.apply.head_ablation_steer import HeadAblationSpec
from steering.apply.lowrank_steer import LowRankSpec
from steering.apply.spec import RowSteering, SteerSpec
from steering.artifacts.head_ablation import HeadAblation
from steering.artifacts.lowrank_edit import LowRankEdit
from steering.artifacts.probe_gate import ProbeGate
from steering.artifacts.steerable import Steerable
from steering.artifacts.steering_vector import SteeringVector


def row_steering(artifact: Steerable, layers: Sequence[int], positions: str, mode: str = "add", force: bool = False,
                 gate: ProbeGate | None = None) -> RowSteering:
    """The intervention at `layers`, `positions` and `mode`, to run batches with one strength per row.

    Args:
        artifact: a `SteeringVector`, a `LowRankEdit` or a `HeadAblation`.
        layers: layers to steer.
        positions: "all", "prompt" or "generated" (`steering.apply.spec`).
        mode: "add", "ablate" or "clamp" (a low-rank edit: "add" only, it is applied as written).
        force: use an artifact made on another model file.
        gate: steer only where this probe gate reads pressure (vectors; a low-rank edit is gated by per-row
            strengths, as the sweep does).

    Raises:
        ValueError: what the artifact cannot do (a mode or gate a low-rank edit does not take, a missing layer).
    """
    chosen = tuple(int(x) for x in layers)
    if isinstance(artifact, SteeringVector):
        return SteerSpec(artifact, chosen, positions, mode, force, gate)
    if isinstance(artifact, LowRankEdit):
        if mode != "add":
            raise ValueError(f"a low-rank edit is applied as written (mode add), not with mode {mode!r}")
        if gate is not None:
            raise ValueError("a low-rank edit takes no probe gate here; the sweep gates it with per-row strengths")
        missing = [layer for layer in chosen if layer not in artifact.edits]
        if missing:
            raise ValueError(f"the edit has no layer {missing[0]} (it has {artifact.layers})")
        return LowRankSpec(artifact, chosen, positions, force)
    if isinstance(artifact, HeadAblation):
        if mode != "add" or gate is not None:
            raise ValueError("a head ablation is applied as written (no mode, no probe gate here; the sweep gates it "
                             "with per-row strengths)")
        artifact.select(list(chosen))  # its one cell: the anchor layer
        return HeadAblationSpec(artifact, positions, force)
    raise TypeError(f"no runtime for a {type(artifact).__name__}: a SteeringVector, LowRankEdit or HeadAblation")
