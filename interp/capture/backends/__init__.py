"""Capture backends: the same sites, the same tensors, three engines.

| name      | engine                                         | use it for                          |
| --------- | ---------------------------------------------- | ----------------------------------- |
| `hooks`   | plain PyTorch forward hooks on the HF model    | the default: fastest, any decoder   |
| `nnsight` | nnsight `TransformersModel` over the same model | any module; remote execution (NDIF) |
| `tl`      | TransformerLens `TransformerBridge`            | head-level analysis                 |

Example:
    >>> backend = make_backend("hooks")
    >>> acts = backend.activations(model, batch, sites)  # doctest: +SKIP
"""

from interp.capture.backends.base import Backend, Batch
from interp.capture.backends.registry import BACKENDS, make_backend

__all__ = ["Backend", "Batch", "make_backend", "BACKENDS"]
