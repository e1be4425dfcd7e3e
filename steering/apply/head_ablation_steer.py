"""Applying a head ablation: `steer_head_ablation` (a context manager) and `HeadAblationSpec` (per-row strengths).

Each listed head's output at `blocks.L.attn.hook_z` (o_proj's input) becomes `z + s * (mean - z)` at the steered
positions (`steering.artifacts.head_ablation`). Positions are `steering.steer`'s: the same reader of each forward
call (`steering.apply.interventions.forward_call`) and the same `position_mask`, so "generated" means exactly what
it means for vectors (from the last prompt token on), under a KV cache too.

Example:
    >>> with steer_head_ablation(model, ablation, [0.0, 1.0], positions="generated", prompt_lengths=[40, 52]):  # doctest: +SKIP
    ...     logits = model.hf(**batch_of_two).logits
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from interp.models.hooks import TensorFn, hooks_on
from interp.sites import Site, parse_site
from steering.apply.interventions import POSITIONS, Lengths, RowPositions, Strength
from steering.apply.spec import steer_lengths

if TYPE_CHECKING:
    from interp.models.loading import ChatModel
    from steering.artifacts.head_ablation import HeadAblation


def _layer_fn(heads: list[int], means: torch.Tensor, d_head: int, where: RowPositions) -> TensorFn:
    index = torch.as_tensor(heads, dtype=torch.long)

    def fn(z: torch.Tensor) -> torch.Tensor:
        b, t, _ = z.shape
        per_head = z.view(b, t, -1, d_head)  # [batch, pos, n_heads, d_head]
        strength = where.strength.to(device=z.device, dtype=z.dtype)
        s = strength.view(-1, 1, 1, 1) if strength.dim() == 1 else strength
        if where.mask is not None:
            s = s * where.mask.view(b, t, 1, 1).to(z.dtype)
        chosen = per_head[:, :, index]
        out = per_head.clone()
        out[:, :, index] = chosen + s * (means.to(device=z.device, dtype=z.dtype) - chosen)
        return out.view(b, t, -1)

    return fn


@contextmanager
def steer_head_ablation(
    model: ChatModel, ablation: HeadAblation, strength: Strength = 1.0, *, positions: str = "all",
    prompt_lengths: Lengths | None = None, force: bool = False,
) -> Iterator[HeadAblation]:
    """Apply a head ablation to every forward pass of `model.hf` inside the block; hooks are always removed.

    Args:
        model: the model.
        ablation: the heads and their means (`steering.artifacts.head_ablation.HeadAblation`).
        strength: a float, or one per batch row; 0 leaves the model exactly unchanged, 1 replaces the heads'
            output by their mean (times the ablation's folded `scale`).
        positions: "all", "prompt" or "generated" (as in `steering.steer`).
        prompt_lengths: real prompt tokens per row (or one int), needed by "prompt" and "generated".
        force: use an ablation made on a model with another weights hash.

    Raises:
        ValueError: unknown positions, missing prompt_lengths, a non-finite or 2-D strength, a head outside the
            model, or (at the first forward) a per-row count that differs from the batch.
    """
    ablation.check_compatible(model.d_model, model.weights_hash, force)
    if positions not in POSITIONS:
        raise ValueError(f"unknown positions {positions!r}: choose from {', '.join(POSITIONS)}")
    if positions != "all" and prompt_lengths is None:
        raise ValueError(f"positions={positions!r} needs prompt_lengths (real prompt tokens per row)")
    if ablation.n_heads != model.n_heads or ablation.d_head != model.d_head:
        raise ValueError(f"the ablation is for {ablation.n_heads} heads of width {ablation.d_head}, the model has "
                         f"{model.n_heads} of width {model.d_head}")
    param = next(model.hf.parameters())
    strength_t = torch.as_tensor(strength, dtype=torch.float32) * float(ablation.scale)
    if strength_t.dim() > 1 or not bool(torch.isfinite(strength_t).all()):
        raise ValueError(f"strength must be a finite number or one per row, got {strength_t.tolist()}")
    lengths = None if prompt_lengths is None else torch.as_tensor(prompt_lengths, dtype=torch.long).to(param.device)
    where = RowPositions(positions, lengths, strength_t, "steer_head_ablation")
    means = torch.from_numpy(ablation.means)
    by_layer: dict[int, list[int]] = {}
    for i, (layer, _head) in enumerate(ablation.heads):
        by_layer.setdefault(layer, []).append(i)
    sites: dict[Site, TensorFn] = {}
    for layer, rows in by_layer.items():
        site = parse_site(f"blocks.{layer}.attn.hook_z", model.n_layers)
        sites[site] = _layer_fn([ablation.heads[i][1] for i in rows], means[rows], ablation.d_head, where)
    with hooks_on(model, sites, before_forward=where.begin_call):
        yield ablation


@dataclass(frozen=True, eq=False)
class HeadAblationSpec:
    """A head ablation without its strength: a `RowSteering`, so `score_strengths` and the generations score it as
    they score vectors (one strength per row; a gate's decisions as per-row strengths).

    Example:
        >>> spec = HeadAblationSpec(ablation, "generated")  # doctest: +SKIP
        >>> cells = score_strengths(model, test, spec, [0.5, 1.0])  # doctest: +SKIP
    """

    ablation: HeadAblation
    positions: str = "generated"
    force: bool = False

    def context(self, model: ChatModel, strengths: float | Sequence[float],
                prompt_tokens: Sequence[int]) -> AbstractContextManager[object]:
        """`steer_head_ablation(...)` for a batch: one strength per row (or one for all) and each row's prompt."""
        return steer_head_ablation(model, self.ablation,
                                   strengths if isinstance(strengths, float | int) else list(strengths),
                                   positions=self.positions, prompt_lengths=steer_lengths(prompt_tokens),
                                   force=self.force)

    def describe(self) -> str:
        return f"{self.ablation.method} (mean-ablation of {', '.join(self.ablation.head_names)}), " \
               f"positions {self.positions}"
