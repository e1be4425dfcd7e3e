"""llama.cpp as a runtime: its library built once per machine, a small C binding, steering per decode call.

| module    | holds                                                                                   |
| --------- | --------------------------------------------------------------------------------------- |
| `build`   | downloads the pinned llama.cpp source (PyPI sdist) and caches `libllama.so` by version     |
| `capi`    | ctypes bindings of the ~20 C functions used, with a struct-layout check against the build |
| `runtime` | `LlamaModel`, `LlamaContext` (sequences, `decode` with a control vector), `ControlVector` |
| `steered` | positions on llama.cpp: score and greedy-generate with "all", "prompt" or "generated"     |

The names below load on first use, so `python -m steering.llamacpp.build` imports no torch.

Example:
    >>> from steering.llamacpp import LlamaModel, LlamaContext, ControlVector, generate  # doctest: +SKIP
    >>> with LlamaModel(gguf) as m, LlamaContext(m, n_ctx=512) as ctx:  # doctest: +SKIP
    ...     tokens = generate(ctx, ids, ControlVector.of(v, -4.0, m.n_layers), "generated", 32, stop)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.lazy_names import lazy_names

if TYPE_CHECKING:
    from steering.llamacpp.build import available, find_library
    from steering.llamacpp.capi import LibraryError
    from steering.llamacpp.runtime import ControlVector, LlamaContext, LlamaModel, Row
    from steering.llamacpp.steered import generate, score

_LAZY = {
    "available": "steering.llamacpp.build",
    "find_library": "steering.llamacpp.build",
    "LibraryError": "steering.llamacpp.capi",
    "ControlVector": "steering.llamacpp.runtime",
    "LlamaContext": "steering.llamacpp.runtime",
    "LlamaModel": "steering.llamacpp.runtime",
    "Row": "steering.llamacpp.runtime",
    "generate": "steering.llamacpp.steered",
    "score": "steering.llamacpp.steered",
}

__all__ = ["ControlVector", "LibraryError", "LlamaContext", "LlamaModel", "Row", "available", "find_library",
           "generate", "score"]

__getattr__ = lazy_names(__name__, _LAZY)
