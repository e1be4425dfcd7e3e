"""The two saved artifact types, and reading a vector file of any format.

| module            | holds                                                                          |
| ----------------- | ------------------------------------------------------------------------------ |
| `steering_vector` | `SteeringVector`: raw residual-stream directions per layer, with provenance    |
| `probe_gate`      | `ProbeGate`: steer only where a linear probe reads "pressure"; its decisions   |
| `vector_file`     | `read_vector`: a vector from any file a user gives (`.safetensors`, `.gguf`)   |

Example:
    >>> from steering.artifacts import read_vector
    >>> v = read_vector("artifacts/demo/sweep/recommended.safetensors")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.lazy_names import lazy_names

if TYPE_CHECKING:
    from steering.artifacts.probe_gate import ProbeGate
    from steering.artifacts.steering_vector import SteeringVector, VectorMismatchError
    from steering.artifacts.vector_file import VECTOR_READERS, check_vector_fits, read_vector

# loaded on first use: `import steering.artifacts.steering_vector` must not import torch
_LAZY = {
    "ProbeGate": "steering.artifacts.probe_gate",
    **dict.fromkeys(("SteeringVector", "VectorMismatchError"), "steering.artifacts.steering_vector"),
    **dict.fromkeys(("VECTOR_READERS", "check_vector_fits", "read_vector"), "steering.artifacts.vector_file"),
}

__all__ = ["VECTOR_READERS", "ProbeGate", "SteeringVector", "VectorMismatchError", "check_vector_fits", "read_vector"]


__getattr__ = lazy_names(__name__, _LAZY)
