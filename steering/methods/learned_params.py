"""What the learned-steering loop trains: a parametrisation of the intervention (`Parametrisation`).

`steering.methods.learned.train_steering` is the one training loop (objective, data, early stopping,
checkpoint and resume, training through a gate); a parametrisation is what it optimises:

| parametrisation                                   | trainable tensors (checkpoint names)             | module |
| ------------------------------------------------- | ------------------------------------------------ | ------ |
| `AdditiveVector`: `h + v` per layer               | `{L}`: the vector `[d_model]`                      | here |
| `LowRankParams`: `h + R^T (W h + b - R h)`        | `basis.{L}` (R's free matrix), `weight.{L}`, `bias.{L}` | `steering.methods.lowrank_learned` |
| `SelfGatedVector`: the vector behind a soft gate  | the vector's, `gate.weight`, `gate.bias`          | `steering.methods.learned_gate` |

Each names its tensors with their Adam learning rates (one optimiser per tensor), gives the row context
that applies them in a pass (per-row strengths: a gate's decisions, or a soft gate's values that carry a
gradient), projects after each optimiser step (the norm cap) and may add terms to the loss (a gate's BCE).

Example:
    >>> params = AdditiveVector((12,))  # doctest: +SKIP
    >>> trained = train_steering(model, split, LearnConfig(layers=(12,)), params)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import torch

from steering.apply.interventions import LayerVector
from steering.apply.spec import SteerSpec
from steering.artifacts.steering_vector import SteeringVector

if TYPE_CHECKING:
    from interp.models.loading import ChatModel
    from steering.methods.learned_objective import LearnConfig, LearnData

#: per example of a pass: the strength its rows get (floats: a gate's fixed decisions; a tensor: a soft gate's
#: values, with a gradient), or None for 1 everywhere
RowScale: TypeAlias = Sequence[float] | torch.Tensor | None
RowContextFn: TypeAlias = Callable[[list[int]], AbstractContextManager[object]]


def learned_context(model: ChatModel, params: dict[int, torch.Tensor], positions: str,
                    tokens: Sequence[int], row_scale: RowScale = None) -> RowContextFn:
    """A `row_context` that adds `params[layer]` (tensors, e.g. trainable) through `steer()` at `positions`.

    Args:
        model: the model.
        params: layer -> `[d_model]` tensor added at that layer's `hook_resid_post`.
        positions: "generated", "all" or "prompt" (`steering.apply.spec`'s offset rule applies).
        tokens: rendered prompt tokens of every example the row indices refer to.
        row_scale: per example, the strength its rows get (a gate's 0/1 decisions, or a `[n]` tensor of a soft
            gate's values through which a gradient flows; None: 1 everywhere).

    Example:
        >>> context = learned_context(model, {12: v}, "generated", tokens)  # doctest: +SKIP
        >>> with context([0, 1]):  # doctest: +SKIP
        ...     model.hf(**batch_of_examples_0_and_1)
    """
    zero = SteeringVector({layer: np.zeros(model.d_model, np.float32) for layer in params}, method="learned",
                          d_model=model.d_model, model_hash=model.weights_hash)
    spec = SteerSpec(zero, tuple(sorted(params)), positions)
    soft = row_scale if isinstance(row_scale, torch.Tensor) else None
    values = soft.detach().tolist() if soft is not None else row_scale

    @contextmanager
    def context(rows: list[int]) -> Iterator[object]:
        strengths = 1.0 if values is None else [float(values[i]) for i in rows]
        with spec.context(model, strengths, [tokens[i] for i in rows]) as handle:
            plan = handle.plan  # type: ignore[attr-defined]
            vectors = {site: LayerVector(params[site.layer], params[site.layer], 1.0) for site in plan.sites}
            if soft is None:
                handle.plan = replace(plan, vectors=vectors)  # type: ignore[attr-defined]
            else:  # the soft gate's values themselves (not float copies), so the gradient reaches the gate
                strength = soft[torch.as_tensor(rows, dtype=torch.long)].to(plan.strength)
                handle.plan = replace(plan, vectors=vectors, strength=strength)  # type: ignore[attr-defined]
            yield handle

    return context


class Parametrisation:
    """A trainable intervention. Subclasses set `tensors` and `lrs` in `start` and implement `context`.

    Attributes:
        layers: the steered layers.
        tensors: checkpoint name -> trainable leaf tensor (after `start`).
        lrs: checkpoint name -> Adam learning rate of that tensor.
    """

    def __init__(self, layers: Sequence[int]) -> None:
        self.layers = tuple(int(x) for x in layers)
        self.tensors: dict[str, torch.Tensor] = {}
        self.lrs: dict[str, float] = {}

    def start(self, model: ChatModel, data: LearnData, resid: dict[int, float], config: LearnConfig) -> None:
        """Create the tensors at their initial values (which steer nothing) and their learning rates."""
        raise NotImplementedError

    def context(self, model: ChatModel, positions: str, tokens: Sequence[int], row_scale: RowScale) -> RowContextFn:
        """The row context that applies the current tensors (`interp.scoring.choices.RowContext`)."""
        raise NotImplementedError

    def project(self) -> None:
        """After each optimiser step (e.g. the norm cap)."""

    def norms(self) -> dict[str, float]:
        """Sizes logged in the training history (`"norm"`)."""
        return {}

    def row_scale(self, data: LearnData, indices: Sequence[int], grad: bool) -> RowScale:
        """Per example of a pass (`data` rows `indices`), the strength its rows get: the fixed gate's decisions."""
        return None if data.row_scale is None else [data.row_scale[i] for i in indices]

    def extra_terms(self, data: LearnData, indices: Sequence[int], grad: bool) -> dict[str, torch.Tensor]:
        """Loss terms beside the objective's (added to the pass's mean loss), on `data` rows `indices`."""
        return {}

    def measured(self) -> dict[str, Any]:
        """What the passes since the last call measured (JSON-able; reset by the call), e.g. an edit's mean norm."""
        return {}

    def fingerprint(self) -> Any:
        """What besides the LearnConfig makes two trainings differ (JSON-able; None: nothing)."""
        return None


class AdditiveVector(Parametrisation):
    """One vector per layer added at `hook_resid_post` (the learned vector): zeros at the start, Adam at
    `lr * mean residual norm / sqrt(d_model)` per step, capped at `max_norm * mean residual norm`.

    Example:
        >>> AdditiveVector.of({1: torch.zeros(4)}).tensors["1"].shape
        torch.Size([4])
    """

    def __init__(self, layers: Sequence[int]) -> None:
        super().__init__(layers)
        self.vectors: dict[int, torch.Tensor] = {}
        self.caps: dict[int, float] = {}

    @classmethod
    def of(cls, vectors: dict[int, torch.Tensor]) -> AdditiveVector:
        """The parametrisation holding these tensors as they are (e.g. to score a given vector)."""
        out = cls(sorted(vectors))
        out.vectors = dict(vectors)
        out.tensors = {str(layer): v for layer, v in vectors.items()}
        return out

    def start(self, model: ChatModel, data: LearnData, resid: dict[int, float], config: LearnConfig) -> None:
        device = next(model.hf.parameters()).device
        self.vectors = {layer: torch.zeros(model.d_model, device=device, requires_grad=True) for layer in self.layers}
        self.tensors = {str(layer): v for layer, v in self.vectors.items()}
        self.lrs = {str(layer): config.lr * (resid[layer] / np.sqrt(model.d_model)) for layer in self.layers}
        self.caps = {layer: config.max_norm * resid[layer] for layer in self.layers}

    def context(self, model: ChatModel, positions: str, tokens: Sequence[int], row_scale: RowScale) -> RowContextFn:
        return learned_context(model, self.vectors, positions, tokens, row_scale)

    def project(self) -> None:
        with torch.no_grad():  # the norm cap: a share of the layer's mean residual norm
            for layer, v in self.vectors.items():
                cap = self.caps[layer]
                norm = float(v.norm())
                if norm > cap:
                    v.mul_(cap / norm)

    def norms(self) -> dict[str, float]:
        return {str(k): float(v.detach().norm()) for k, v in self.vectors.items()}
