"""`SteerSpec`, the one steering record (what to steer with, where, how), and where "generated" starts.

A `SteerSpec` is an intervention without its strength. `spec.context(model,
strengths, prompt_tokens)` applies it to a batch of rendered prompts through
`steer`; per-row steering (`steering.apply.rows.steer_rows`) takes one spec
(or None) and one strength per row; the nnsight/TransformerLens twins
(`steering.apply.parity`) take one spec.

`positions="generated"` in scoring and generation: the first answer token is
predicted AT the last prompt token, so a rule that starts after the prompt
would leave that prediction unsteered (the KL at the answer position would be
zero by construction). Like CAA, which steers from the end of the instruction
on, the workbench passes `prompt_lengths = prompt tokens - GENERATED_OFFSET`
(`GENERATED_OFFSET = 1`) to `steering.steer`: "generated" steers the last
prompt token and every token after it (scoring prefix, answer, generated
text); "prompt" steers the tokens before it. "Prompt tokens" are the tokens of
the rendered chat up to and including the assistant header.

Example:
    >>> spec = SteerSpec(vector, layers=(10,), positions="generated")  # doctest: +SKIP
    >>> with spec.context(model, strengths=[-4.0, 4.0], prompt_tokens=[61, 58]):  # doctest: +SKIP
    ...     model.hf(**batch_of_two)
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from steering.apply.interventions import Lengths, SteeringPlan, Strength, build_plan
from steering.apply.steer_hooks import steer
from steering.artifacts.probe_gate import ProbeGate
from steering.artifacts.steering_vector import SteeringVector

if TYPE_CHECKING:
    from interp.models.loading import ChatModel

GENERATED_OFFSET = 1


def steer_lengths(prompt_tokens: Sequence[int]) -> list[int]:
    """The `prompt_lengths` passed to `steer`: prompt tokens minus GENERATED_OFFSET (never below 0).

    Example:
        >>> steer_lengths([10, 1])
        [9, 0]
    """
    return [max(int(n) - GENERATED_OFFSET, 0) for n in prompt_tokens]


class RowSteering(Protocol):
    """An intervention without its strength, applied to a batch with one strength per row: what scoring
    (`steering.evaluation.evaluate.score_strengths`) and generation take. `SteerSpec` (a vector), `HeadSpec` (head edits,
    `steering.methods.head_steer`) and `LowRankSpec` (`steering.apply.lowrank_steer`) are the three."""

    @property
    def positions(self) -> str:
        """The positions rule (`"generated"` lets scoring reuse the frozen unsteered prefix)."""
        ...

    def context(
        self, model: ChatModel, strengths: float | Sequence[float], prompt_tokens: Sequence[int]
    ) -> AbstractContextManager[object]:
        """The context that steers a batch: one strength per row (or one for all), each row's prompt tokens."""
        ...

    def describe(self) -> str:
        """One line saying what steers where."""
        ...


@dataclass(frozen=True, eq=False)
class SteerSpec:
    """A steering intervention without its strength.

    Args:
        vector: raw per-layer vectors.
        layers: layers to steer (each with its own vector).
        positions: "all", "prompt" or "generated" (see the module docstring).
        mode: "add", "ablate" or "clamp" (steering.apply.interventions).
        force: use a vector built on another model hash.
        gate: steer only rows whose last prompt token the gate reads as user pressure
            (`steering.methods.gates`); it reads the real last prompt token, whatever `positions`.
        value: clamp only: the projection to set (the strength is then ignored).

    Example:
        >>> import numpy as np
        >>> v = SteeringVector({3: np.ones(4, dtype=np.float32)}, method="mean_diff", d_model=4)
        >>> SteerSpec(v, (3,), "generated").describe()
        'mean_diff @ layers 3, positions generated, mode add'
    """

    vector: SteeringVector
    layers: tuple[int, ...]
    positions: str = "all"
    mode: str = "add"
    force: bool = False
    gate: ProbeGate | None = None
    value: float | None = None

    def context(
        self, model: ChatModel, strengths: float | Sequence[float], prompt_tokens: Sequence[int]
    ) -> AbstractContextManager[object]:
        """`steer(...)` for a batch: one strength per row (or one for all) and each row's prompt tokens.

        Args:
            model: the model.
            strengths: a float or one per row.
            prompt_tokens: rendered-prompt tokens of each row (before the offset rule).
        """
        return steer(model, self.vector, strengths if isinstance(strengths, float | int) else list(strengths),
                     layers=list(self.layers), positions=self.positions, mode=self.mode, value=self.value,
                     prompt_lengths=steer_lengths(prompt_tokens), force=self.force, gate=self.gate,
                     gate_lengths=[int(n) for n in prompt_tokens] if self.gate is not None else None)

    def plan(self, model: ChatModel, strength: Strength, prompt_lengths: Lengths | None = None) -> SteeringPlan:
        """The validated plan of this spec at `strength` (`build_plan`; the gate is validated by who applies it).

        Args:
            model: the model.
            strength: a float, or one per row.
            prompt_lengths: the "prompt"/"generated" boundary per row, as `steer` takes it (no offset rule).

        Raises:
            VectorMismatchError, ValueError: as `build_plan`.
        """
        return build_plan(model, self.vector, strength, list(self.layers), self.positions, self.mode, self.value,
                          prompt_lengths, self.force)

    def describe(self) -> str:
        """One line for logs: method, layers, positions, mode and gate."""
        layers = ",".join(str(x) for x in self.layers)
        gated = f", gated by a probe at layer {self.gate.layer}" if self.gate is not None else ""
        return f"{self.vector.method} @ layers {layers}, positions {self.positions}, mode {self.mode}{gated}"
