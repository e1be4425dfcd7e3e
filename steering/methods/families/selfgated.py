"""The selfgated family: a learned vector behind a gate learned with it (`steering.methods.learned_gate`).

`selfgated[:target][@positions][#L+L][/task+task]` (the learned family's names). Like `gated`, the vector trains
through a gate at its first layer and every cell of its curve is gated; unlike `gated`, whose gate is the sweep's
probe gate held fixed, its gate starts from that probe gate and learns with the vector: a soft gate in training
(its values multiply each row's steering), trained by the behaviour objective plus a cross-entropy on the
user-opinion labels, then the hard gate (threshold 0 on its logit) in the cells. The learned gate travels in the
vector's meta; the sweep gates the cells with it (`cell_gate`), saves it under `gates/` and records its errors on
the test wordings beside the probe gates'.

Example:
    >>> FAMILY.parse("selfgated:known#12").name, FAMILY.always_gated
    ('selfgated:known#12', True)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from steering.artifacts.probe_gate import ProbeGate
from steering.artifacts.steering_vector import SteeringVector
from steering.methods.families.gated import Gated
from steering.methods.family import BuildRequest, Method
from steering.methods.learned import LearnConfig
from steering.methods.learned_gate import SelfGateConfig, learn_selfgated, learned_gate

if TYPE_CHECKING:
    from steering.artifacts.steerable import Steerable


class SelfGated(Gated):
    """Learned vectors trained and measured behind a gate learned with them, started from the sweep's probe gate."""

    name = "selfgated"
    scale = "strength -1 adds the trained vector where its learned gate fires"
    settings = SelfGateConfig()

    def train(self, method: Method, request: BuildRequest, config: LearnConfig, folder: Path,
              progress: Callable[[int, dict[str, float]], None]) -> SteeringVector:
        gate = self.gate(request, min(config.layers))
        return learn_selfgated(request.model, request.split, config, gate, self.settings, folder, progress=progress)

    def cell_gate(self, artifact: Steerable, layer: int) -> ProbeGate | None:
        """The gate learned with the vector whose first layer is `layer` (in its meta, or its layer part's)."""
        part = artifact.meta.get("layers", {}).get(str(layer), {})
        gate = learned_gate(part) or learned_gate(artifact.meta)
        if gate is None:
            raise ValueError(f"{artifact.method}: no learned gate at layer {layer} in the vector's meta")
        return gate

    def same_build(self, old: Steerable, method: Method, request: BuildRequest, pairs_hash: str) -> bool:
        if not super().same_build(old, method, request, pairs_hash):
            return False
        for group in self.cell_layers(method, request.layers):
            meta = old.meta if len(group) > 1 else old.meta.get("layers", {}).get(str(group[0]), {})
            if meta.get("selfgate") != self.settings.to_dict() or learned_gate(meta) is None:
                return False
        return True


FAMILY = SelfGated()
