"""The in-workbench reference each export is compared with: forward hooks, no weight edits.

- add: `strength * v_L` added at `blocks.L.hook_resid_post`, every position
  (what llama.cpp's `direction.L` and a folded down_proj bias do).
- ablate: the unit direction u projected out (x - s (x.u) u, s = 1 by default) of everything that
  writes to the residual stream: the embedding output (`blocks.0.hook_resid_pre`)
  and every layer's attention and MLP outputs (`hook_attn_out`,
  `hook_mlp_out`). The stream is their sum, so it never holds u; this is the
  hook form of orthogonalising the writing weights (Arditi et al. 2024).

Example:
    >>> with hooks_on(model, reference_hooks(model, vector, "add", 4.0)):  # doctest: +SKIP
    ...     logits = model.hf(ids).logits
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from interp.models.hooks import TensorFn
from interp.models.loading import ChatModel
from interp.sites import Site
from steering.artifacts.steering_vector import SteeringVector
from steering.export.info import ExportError, ablation_direction, mode_strength


def add_hooks(model: ChatModel, vector: SteeringVector, strength: float | None) -> dict[Site, TensorFn]:
    """Hooks adding `strength * v_L` at `blocks.L.hook_resid_post` (all positions)."""
    scaled = vector * mode_strength("add", strength)  # the same float32 product every export writes

    def adder(delta: np.ndarray) -> TensorFn:
        def fn(t: torch.Tensor) -> torch.Tensor:  # [batch, pos, d_model]
            return t + torch.from_numpy(delta).to(t.dtype)

        return fn

    return {Site(layer, vector.site_kind): adder(delta) for layer, delta in scaled.directions.items()}


def ablation_sites(n_layers: int) -> list[Site]:
    """Every site that writes to the residual stream, as the fold edits it."""
    sites = [Site(0, "hook_resid_pre")]
    for layer in range(n_layers):
        sites += [Site(layer, "hook_attn_out"), Site(layer, "hook_mlp_out")]
    return sites


def ablate_hooks(model: ChatModel, vector: SteeringVector, strength: float | None) -> dict[Site, TensorFn]:
    """Hooks removing `strength` times the projection on u from every residual write (1 = full ablation)."""
    u64 = ablation_direction(vector)
    s = mode_strength("ablate", strength)

    def fn(t: torch.Tensor) -> torch.Tensor:  # [batch, pos, d_model]
        u = torch.from_numpy(u64).to(t.dtype)
        return t - s * (t @ u).unsqueeze(-1) * u

    return dict.fromkeys(ablation_sites(model.n_layers), fn)


REFERENCES: dict[str, Callable[[ChatModel, SteeringVector, float | None], dict[Site, TensorFn]]] = {
    "add": add_hooks,
    "ablate": ablate_hooks,
}


def reference_hooks(model: ChatModel, vector: SteeringVector, mode: str, strength: float | None) -> dict[Site, TensorFn]:
    """The hook form of an export in `mode` ("add" or "ablate").

    Example:
        >>> hooks = reference_hooks(model, vector, "ablate", None)  # doctest: +SKIP
    """
    if mode not in REFERENCES:
        raise ExportError(f"no reference for mode {mode!r}; modes: {', '.join(REFERENCES)}")
    return REFERENCES[mode](model, vector, strength)
