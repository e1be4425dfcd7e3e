"""steering: apply directions at inference, evaluate the trade-off, sweep, export.

| where                | holds                                                                             |
| -------------------- | --------------------------------------------------------------------------------- |
| `steering_vector`    | `SteeringVector`: raw residual-stream directions per layer with their provenance   |
| `interventions`      | what an intervention does to one residual tensor (modes, positions, a plan)        |
| `steer`, `spec`      | `steer(...)`, the context manager; `SteerSpec` (what to steer with, where)          |
| `rows`               | per-row steering: each batch row with its own vector, strength and gate            |
| `backends`           | the same interventions through nnsight and the TransformerLens bridge              |
| `probe_gate`         | `ProbeGate`: steer only where a linear probe reads "pressure"; its decisions         |
| `gate_training`      | picks a gate's examples and activations; `probes` fits the gate                    |
| `splits`, `testset`  | the pair split (train/test) and the held-out test set                              |
| `evaluate`           | a steered model's scores on a test set, K strengths in one pass                     |
| `generation`         | greedy generation with per-row steering, degeneracy heuristics                     |
| `methods/`           | the one registry of vector methods: statistics, learned, heads                      |
| `sweep/`             | config, cells, Ray, metrics, fits, report                                          |
| `export/`            | safetensors, GGUF control vector, folded checkpoint, and their verification        |
| `llamacpp/`          | llama.cpp as a runtime: cached library build, C binding, vectors set per decode    |
| `serve/`             | the OpenAI-compatible server, its scheduler and engines (torch, llama.cpp)          |

Steering picks training examples and captures activations; estimators are fitted by `probes`.
The names below are imported on first use, so reading a vector file does not load torch.

Example:
    >>> from steering import SteeringVector
    >>> from steering.steer import steer  # the module `steering.steer` holds the context manager of that name
    >>> with steer(model, vector, strength=-4.0, layers=10, positions="generated"):  # doctest: +SKIP
    ...     model.hf.generate(**inputs)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.lazy_names import lazy_names

if TYPE_CHECKING:
    from steering.probe_gate import ProbeGate
    from steering.spec import SteerSpec
    from steering.splits import PairSplit
    from steering.steering_vector import SteeringVector, VectorMismatchError

# loaded on first use: `import steering.steering_vector` must not import torch and transformers
_LAZY = {
    "PairSplit": "steering.splits",
    "ProbeGate": "steering.probe_gate",
    "SteerSpec": "steering.spec",
    "SteeringVector": "steering.steering_vector",
    "VectorMismatchError": "steering.steering_vector",
}

__all__ = ["PairSplit", "ProbeGate", "SteerSpec", "SteeringVector", "VectorMismatchError"]


__getattr__ = lazy_names(__name__, _LAZY)
