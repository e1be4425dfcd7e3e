"""Applying a steering vector in the forward pass: interventions, `steer`, per-row steering, generation.

| module          | holds                                                                            |
| --------------- | -------------------------------------------------------------------------------- |
| `interventions` | what an intervention does to one residual tensor (modes, positions, a plan)       |
| `steer_hooks`   | `steer(...)`, the context manager, through forward hooks; its `Steering` handle    |
| `spec`          | `SteerSpec` (what to steer with, where) and the "generated" offset rule          |
| `rows`          | per-row steering: each batch row with its own vector, strength and gate           |
| `generation`    | greedy generation with per-row steering, degeneracy heuristics                    |
| `parity`        | the same interventions through nnsight and the TransformerLens bridge             |

Example:
    >>> from steering.apply import steer
    >>> with steer(model, vector, -4.0, layers=10, positions="generated", prompt_lengths=[31]):  # doctest: +SKIP
    ...     model.hf.generate(**inputs)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.lazy_names import lazy_names

if TYPE_CHECKING:
    from steering.apply.generation import generate_texts, greedy_stream
    from steering.apply.interventions import MODES, POSITIONS, SteeringPlan, build_plan
    from steering.apply.rows import steer_rows
    from steering.apply.spec import GENERATED_OFFSET, SteerSpec, steer_lengths
    from steering.apply.steer_hooks import Steering, steer

# loaded on first use: importing one module of the group does not import the others (nnsight, generation)
_LAZY = {
    **dict.fromkeys(("generate_texts", "greedy_stream"), "steering.apply.generation"),
    **dict.fromkeys(("MODES", "POSITIONS", "SteeringPlan", "build_plan"), "steering.apply.interventions"),
    "steer_rows": "steering.apply.rows",
    **dict.fromkeys(("GENERATED_OFFSET", "SteerSpec", "steer_lengths"), "steering.apply.spec"),
    **dict.fromkeys(("Steering", "steer"), "steering.apply.steer_hooks"),
}

__all__ = [
    "GENERATED_OFFSET",
    "MODES",
    "POSITIONS",
    "SteerSpec",
    "Steering",
    "SteeringPlan",
    "build_plan",
    "generate_texts",
    "greedy_stream",
    "steer",
    "steer_lengths",
    "steer_rows",
]


__getattr__ = lazy_names(__name__, _LAZY)
