"""Applying a low-rank edit: `steer_lowrank` (a context manager) and `LowRankSpec` (per-row strengths, for cells).

The edit `h <- h + s * R^T (W h + b - R h)` (`steering.artifacts.lowrank_edit`) runs in a forward hook at
`blocks.L.hook_resid_post`. Positions are `steering.steer`'s: the same pre-hook reader of each forward call
(`steering.apply.interventions.forward_call`) and the same `position_mask`, so "generated" means exactly what it
means for vectors (from the last prompt token on, with `steering.apply.spec.steer_lengths`), under a KV cache too.
`edit_context` is the tensor-level form the training loop uses (trainable R, W, b and per-row strengths that
carry a gradient); `steer_lowrank` applies a saved `LowRankEdit`.

Example:
    >>> with steer_lowrank(model, edit, [0.0, 1.0], positions="generated", prompt_lengths=[40, 52]):  # doctest: +SKIP
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
    from steering.artifacts.lowrank_edit import LowRankEdit


@dataclass(frozen=True, eq=False)
class EditTensors:
    """One layer's edit as tensors (trainable in training): R `[r, d]`, W `[r, d]`, b `[r]`."""

    rotation: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor


def lowrank_delta(h: torch.Tensor, rotation: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The edit at strength 1, `R^T (W h + b - R h)`, for residuals `h` `[..., d]` (exactly 0 where W = R, b = 0).

    Example:
        >>> R = torch.tensor([[1.0, 0.0]]); W = torch.tensor([[0.0, 2.0]]); b = torch.tensor([0.5])
        >>> lowrank_delta(torch.tensor([[1.0, 3.0]]), R, W, b).tolist()
        [[5.5, 0.0]]
    """
    return (h @ (weight - rotation).T + bias) @ rotation  # [..., r] @ [r, d]


class EditNorms:
    """Mean norm of the edit at strength 1 over the steered tokens, per layer, accumulated over passes.

    The rows of R are orthonormal, so the edit's norm is the norm of its subspace coordinates `W h + b - R h`.
    """

    def __init__(self) -> None:
        self.sums: dict[int, float] = {}
        self.counts: dict[int, int] = {}

    def add(self, layer: int, coords: torch.Tensor, mask: torch.Tensor | None) -> None:
        norms = coords.detach().float().norm(dim=-1)  # [batch, pos]
        picked = norms if mask is None else norms[mask]
        self.sums[layer] = self.sums.get(layer, 0.0) + float(picked.sum())
        self.counts[layer] = self.counts.get(layer, 0) + int(picked.numel())

    def means(self) -> dict[int, float]:
        """Layer -> mean edit norm (layers that saw no steered token are left out); then start afresh."""
        out = {layer: self.sums[layer] / n for layer, n in self.counts.items() if n}
        self.sums, self.counts = {}, {}
        return out


def _layer_fn(layer: int, edit: EditTensors, where: RowPositions, norms: EditNorms | None) -> TensorFn:
    def fn(h: torch.Tensor) -> torch.Tensor:
        rotation = edit.rotation.to(device=h.device, dtype=h.dtype)
        coords = h @ (edit.weight.to(device=h.device, dtype=h.dtype) - rotation).T \
            + edit.bias.to(device=h.device, dtype=h.dtype)  # [batch, pos, r]
        if norms is not None:
            norms.add(layer, coords, where.mask)
        strength = where.strength.to(device=h.device, dtype=h.dtype)
        s = strength.view(-1, 1, 1) if strength.dim() == 1 else strength
        delta = s * (coords @ rotation)  # [batch, pos, d]
        if where.mask is not None:
            delta = where.mask.unsqueeze(-1).to(h.dtype) * delta
        return h + delta

    return fn


@contextmanager
def edit_context(model: ChatModel, edits: dict[int, EditTensors], strength: Strength, positions: str = "all",
                 prompt_lengths: Lengths | None = None, norms: EditNorms | None = None) -> Iterator[None]:
    """Apply tensor edits (layer -> `EditTensors`) to every forward of `model.hf` inside the block.

    Args:
        model: the model.
        edits: layer -> R, W, b (gradients flow into them when they require it).
        strength: a float, one per row, or a `[batch]` tensor (a gradient flows into it when it requires one).
        positions: "all", "prompt" or "generated" (as in `steering.steer`).
        prompt_lengths: real prompt tokens per row (or one int), needed by "prompt" and "generated".
        norms: where to accumulate the edit's mean norm at strength 1 (None: not measured).

    Raises:
        ValueError: unknown positions, missing prompt_lengths, a non-finite or 2-D strength, a layer outside
            the model, or (at the first forward) a per-row count that differs from the batch.
    """
    if positions not in POSITIONS:
        raise ValueError(f"unknown positions {positions!r}: choose from {', '.join(POSITIONS)}")
    if positions != "all" and prompt_lengths is None:
        raise ValueError(f"positions={positions!r} needs prompt_lengths (real prompt tokens per row)")
    param = next(model.hf.parameters())
    strength_t = strength if isinstance(strength, torch.Tensor) else torch.as_tensor(strength, dtype=torch.float32)
    if strength_t.dim() > 1 or not bool(torch.isfinite(strength_t.detach()).all()):
        raise ValueError(f"strength must be a finite number or one per row, got {strength_t.tolist()}")
    lengths = None if prompt_lengths is None else torch.as_tensor(prompt_lengths, dtype=torch.long).to(param.device)
    where = RowPositions(positions, lengths, strength_t, "steer_lowrank")
    sites: dict[Site, TensorFn] = {}
    for layer, edit in edits.items():
        site = parse_site(f"blocks.{layer}.hook_resid_post", model.n_layers)
        sites[site] = _layer_fn(site.layer, edit, where, norms)
    with hooks_on(model, sites, before_forward=where.begin_call):
        yield


@contextmanager
def steer_lowrank(
    model: ChatModel, edit: LowRankEdit, strength: Strength = 1.0, *, layers: Sequence[int] | None = None,
    positions: str = "all", prompt_lengths: Lengths | None = None, force: bool = False,
) -> Iterator[LowRankEdit]:
    """Apply a saved low-rank edit to every forward pass of `model.hf` inside the block; hooks are always removed.

    Args:
        model: the model.
        edit: the edit (`steering.artifacts.lowrank_edit.LowRankEdit`).
        strength: a float, or one per batch row; 0 leaves the model exactly unchanged, 1 applies the edit.
        layers: the layers to apply (None: every layer of the edit).
        positions: "all", "prompt" or "generated" (as in `steering.steer`).
        prompt_lengths: real prompt tokens per row (or one int), needed by "prompt" and "generated".
        force: use an edit trained on a model with another weights hash.

    Yields:
        The edit.

    Example:
        >>> with steer_lowrank(model, edit, 1.0, positions="generated", prompt_lengths=40):  # doctest: +SKIP
        ...     model.hf.generate(**batch, max_new_tokens=20)
    """
    edit.check_compatible(model.d_model, model.weights_hash, force)
    chosen = edit.select([int(x) for x in layers]) if layers is not None else edit
    param = next(model.hf.parameters())
    tensors = {layer: EditTensors(*(torch.from_numpy(x).to(device=param.device, dtype=param.dtype)
                                    for x in (e.rotation, e.weight, e.bias))) for layer, e in chosen.edits.items()}
    with edit_context(model, tensors, strength, positions, prompt_lengths):
        yield edit


@dataclass(frozen=True, eq=False)
class LowRankSpec:
    """A low-rank edit without its strength: `steering.apply.spec.SteerSpec`'s counterpart (a `RowSteering`), so
    `steering.evaluation.evaluate.score_strengths` and the generations score it the same way.

    Example:
        >>> spec = LowRankSpec(edit, (12,), "generated")  # doctest: +SKIP
        >>> cells = score_strengths(model, test, spec, [0.5, 1.0])  # doctest: +SKIP
    """

    edit: LowRankEdit
    layers: tuple[int, ...]
    positions: str = "generated"
    force: bool = False

    def context(self, model: ChatModel, strengths: float | Sequence[float],
                prompt_tokens: Sequence[int]) -> AbstractContextManager[object]:
        """`steer_lowrank(...)` for a batch: one strength per row (or one for all) and each row's prompt tokens."""
        return steer_lowrank(model, self.edit, strengths if isinstance(strengths, float | int) else list(strengths),
                             layers=self.layers, positions=self.positions,
                             prompt_lengths=steer_lengths(prompt_tokens), force=self.force)

    def describe(self) -> str:
        layers = ",".join(str(x) for x in self.layers)
        return f"{self.edit.method} (rank {self.edit.rank} edit) @ layers {layers}, positions {self.positions}"
