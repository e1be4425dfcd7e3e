"""steering: apply directions at inference, evaluate the trade-off, sweep, export.

| where                | holds                                                                             |
| -------------------- | --------------------------------------------------------------------------------- |
| `steering_vector`    | `SteeringVector`: raw residual-stream directions per layer with their provenance   |
| `interventions`      | what an intervention does to one residual tensor (modes, positions, a plan)        |
| `steer`, `spec`      | `steer(...)`, the context manager; `SteerSpec` (what to steer with, where)          |
| `backends`           | the same interventions through nnsight and the TransformerLens bridge              |
| `probe_gate`         | `ProbeGate`: steer only where a linear probe reads "pressure"; its decisions         |
| `gate_training`      | picks a gate's examples and activations; `probes` fits the gate                    |
| `splits`, `testset`  | the pair split (train/test) and the held-out test set                              |
| `evaluate`           | a steered model's scores on a test set, K strengths in one pass                     |
| `generation`         | greedy generation with per-row steering, degeneracy heuristics                     |
| `methods/`           | the one registry of vector methods: statistics, learned, heads                      |
| `sweep/`             | config, cells, Ray, metrics, fits, report                                          |
| `export/`            | safetensors, GGUF control vector, folded checkpoint, and their verification        |

Steering picks training examples and captures activations; estimators are fitted by `probes`.

Example:
    >>> from steering import SteeringVector, steer
    >>> with steer(model, vector, strength=-4.0, layers=10, positions="generated"):  # doctest: +SKIP
    ...     model.hf.generate(**inputs)
"""

from steering.probe_gate import ProbeGate
from steering.spec import SteerSpec
from steering.splits import PairSplit
from steering.steer import steer
from steering.steering_vector import SteeringVector, VectorMismatchError

__all__ = ["PairSplit", "ProbeGate", "SteerSpec", "SteeringVector", "VectorMismatchError", "steer"]
