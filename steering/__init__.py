"""steering: apply directions at inference, evaluate the trade-off, sweep, export.

| where         | holds                                                                                       |
| ------------- | ------------------------------------------------------------------------------------------- |
| `artifacts/`  | the saved types: `SteeringVector`, `LowRankEdit`, `HeadAblation`, `ProbeGate`; `read_vector` |
| `apply/`      | in the forward pass: interventions, `steer(...)`, `SteerSpec`, per-row steering, generation |
| `evaluation/` | held-out measurement: the pair split, the test set, scores of K strengths in one pass       |
| `methods/`    | the one table of method families (statistics, learned, gated, low-rank, heads, copy heads, prompt, file) |
| `sweep/`      | config, cells, Ray, metrics, fits, report                                                   |
| `serve/`      | the OpenAI-compatible server: scheduler, engines (torch, llama.cpp), per-request steering    |
| `export/`     | safetensors, GGUF control vector, folded checkpoint, and their verification                 |
| `llamacpp/`   | llama.cpp as a runtime: cached library build, C binding, vectors set per decode              |

Steering picks training examples and captures activations; estimators are fitted by `probes`.
The names below are imported on first use, so reading a vector file does not load torch.

Example:
    >>> from steering import SteeringVector, steer
    >>> with steer(model, vector, strength=-4.0, layers=10, positions="generated",
    ...            prompt_lengths=[31]):  # doctest: +SKIP
    ...     model.hf.generate(**inputs)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.lazy_names import lazy_names

if TYPE_CHECKING:
    from steering.apply.rows import steer_rows
    from steering.apply.spec import SteerSpec
    from steering.apply.steer_hooks import steer
    from steering.artifacts.head_ablation import HeadAblation
    from steering.artifacts.lowrank_edit import LowRankEdit
    from steering.artifacts.probe_gate import ProbeGate
    from steering.artifacts.steering_vector import SteeringVector, VectorMismatchError
    from steering.artifacts.vector_file import read_vector
    from steering.evaluation.splits import PairSplit

# loaded on first use: `import steering.artifacts.steering_vector` must not import torch and transformers
_LAZY = {
    "HeadAblation": "steering.artifacts.head_ablation",
    "LowRankEdit": "steering.artifacts.lowrank_edit",
    "PairSplit": "steering.evaluation.splits",
    "ProbeGate": "steering.artifacts.probe_gate",
    "SteerSpec": "steering.apply.spec",
    "SteeringVector": "steering.artifacts.steering_vector",
    "VectorMismatchError": "steering.artifacts.steering_vector",
    "read_vector": "steering.artifacts.vector_file",
    "steer": "steering.apply.steer_hooks",
    "steer_rows": "steering.apply.rows",
}

__all__ = ["HeadAblation", "LowRankEdit", "PairSplit", "ProbeGate", "SteerSpec", "SteeringVector", "VectorMismatchError", "read_vector", "steer",
           "steer_rows"]


__getattr__ = lazy_names(__name__, _LAZY)
