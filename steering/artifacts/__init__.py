"""The two saved artifact types, and reading a vector file of any format.

| module            | holds                                                                          |
| ----------------- | ------------------------------------------------------------------------------ |
| `steering_vector` | `SteeringVector`: raw residual-stream directions per layer, with provenance      |
| `probe_gate`      | `ProbeGate`: steer only where a linear probe reads "pressure"; its decisions     |

Example:
    >>> from steering.artifacts import SteeringVector
    >>> v = SteeringVector.load("artifacts/demo/sweep/recommended.safetensors")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.lazy_names import lazy_names

if TYPE_CHECKING:
    from steering.artifacts.probe_gate import ProbeGate
    from steering.artifacts.steering_vector import SteeringVector, VectorMismatchError

# loaded on first use: `import steering.artifacts.steering_vector` must not import torch
_LAZY = {
    "ProbeGate": "steering.artifacts.probe_gate",
    **dict.fromkeys(("SteeringVector", "VectorMismatchError"), "steering.artifacts.steering_vector"),
}

__all__ = ["ProbeGate", "SteeringVector", "VectorMismatchError"]


__getattr__ = lazy_names(__name__, _LAZY)
