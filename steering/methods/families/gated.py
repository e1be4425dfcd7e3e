"""The gated family: a learned vector trained through a gate, and measured behind it.

`gated[:target][@positions][#L+L][/task+task]` (the learned family's names): the sweep's gate at the vector's
first layer (a probe that reads "the user states an opinion" at the last prompt token, trained on the train
split in hundreds of training wordings, `steering.methods.gates`) is part of the forward pass in training, as
it is in every cell: a row is steered only where the gate fires. Neutral and general prompts the gate holds
back cost nothing, so the keep terms charge only the rows the gate lets through (user-right prompts, and the
gate's false positives), and the vector can be as strong as the pressured rows need. Its gate is saved beside
it and exported with it; its cells are always gated (there is no always-on curve of a vector trained this way).

Example:
    >>> FAMILY.parse("gated:known#12").name, FAMILY.always_gated
    ('gated:known#12', True)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from steering.artifacts.probe_gate import ProbeGate
from steering.artifacts.steering_vector import SteeringVector
from steering.methods.families.learned import Learned
from steering.methods.family import BuildRequest, Method
from steering.methods.learned import LearnConfig, learn_vector

if TYPE_CHECKING:
    from steering.artifacts.steerable import Steerable


class Gated(Learned):
    """Learned vectors trained and measured behind the sweep's gate at their first layer."""

    name = "gated"
    strengths = (-3.0, -2.0, -1.5, -1.0, -0.5)
    scale = "strength -1 adds the trained vector where the gate fires"
    always_gated = True

    def gate(self, request: BuildRequest, layer: int) -> ProbeGate:
        """The gate this family trains through: the sweep's gate at `layer`."""
        path = request.gates.get(layer)
        if path is None:
            raise ValueError(f"method family gated: no gate at layer {layer} (the sweep trains one per first "
                             "steered layer)")
        return ProbeGate.load(path)

    def train(self, method: Method, request: BuildRequest, config: LearnConfig, folder: Path,
              progress: Callable[[int, dict[str, float]], None]) -> SteeringVector:
        gate = self.gate(request, min(config.layers))
        return learn_vector(request.model, request.split, config, folder, progress=progress, gate=gate)

    def same_build(self, old: Steerable, method: Method, request: BuildRequest, pairs_hash: str) -> bool:
        from steering.methods.gates import gate_hash

        if not super().same_build(old, method, request, pairs_hash):
            return False
        for group in self.cell_layers(method, request.layers):
            meta = old.meta if len(group) > 1 else old.meta.get("layers", {}).get(str(group[0]), {})
            if meta.get("gate", {}).get("hash") != gate_hash(self.gate(request, group[0])):
                return False
        return True


FAMILY = Gated()
