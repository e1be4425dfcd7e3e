"""Head-level interventions on `blocks.L.attn.hook_z`: shift, scale or ablate single attention heads.

A `HeadEdit` is an affine map per head of the per-head attention values `z_h`
(o_proj's input, `[d_head]` per head), applied with a strength `s`:

    z_h <- z_h + s * ((scale_h - 1) * z_h + shift_h)

so strength 0 leaves the model unchanged and strength 1 applies the edit:
`scale_h = 0` zero-ablates head h, `scale_h = 2` doubles it, `shift_h` adds a
constant vector in the head's space (an ITI-style shift, Li et al. 2023).
Heads without an entry are untouched. Positions follow `steering.steer`:
"all", "prompt" or "generated", with the same `prompt_lengths` convention
(real prompt tokens per row; `steering.apply.spec.steer_lengths` applies the
GENERATED_OFFSET), tracked in absolute terms under a KV cache.

What exports: a constant shift is linear through o_proj, so shifting z_h by
`s * shift_h` adds exactly `s * W_O[:, h] @ shift_h` to `blocks.L.hook_attn_out`
(`head_shift_residual`, tested equal to `steer()` with that vector). A scale
is input-dependent (it multiplies the head's own output), so it is no vector:
it exports only as a folded checkpoint with o_proj's columns of the head
scaled (`steering.methods.head_fold`).

Example:
    >>> edit = HeadEdit(n_heads=9, d_head=64, scales={(23, 0): 0.0})  # doctest: +SKIP
    >>> with steer_heads(model, edit, 1.0):  # doctest: +SKIP
    ...     logits = model.hf(**batch).logits  # L23H0 zero-ablated
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from interp.analysis.heads import o_proj
from interp.models.hooks import TensorFn, hooks_on
from interp.sites import Site
from steering.apply.interventions import POSITIONS, Lengths, RowPositions, Strength
from steering.apply.spec import steer_lengths

if TYPE_CHECKING:
    from interp.models.loading import ChatModel

Head = tuple[int, int]  # (layer, head)


@dataclass(frozen=True, eq=False)
class HeadEdit:
    """Per-head shifts `[d_head]` and scales on hook_z, applied by `steer_heads`.

    Args:
        n_heads: attention heads per layer of the model.
        d_head: width of one head's z.
        shifts: (layer, head) -> vector `[d_head]` added to the head's z (times the strength).
        scales: (layer, head) -> factor on the head's z (1 = unchanged, 0 = zero ablation).

    Example:
        >>> e = HeadEdit(n_heads=4, d_head=2, shifts={(1, 3): np.ones(2)}, scales={(0, 0): 0.0})
        >>> e.layers, e.heads
        ([0, 1], [(0, 0), (1, 3)])
    """

    n_heads: int
    d_head: int
    shifts: Mapping[Head, np.ndarray] = field(default_factory=dict)
    scales: Mapping[Head, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shifts = {}
        for (layer, head), vec in self.shifts.items():
            arr = np.asarray(vec, dtype=np.float32)
            if arr.shape != (self.d_head,):
                raise ValueError(f"shift of L{layer}H{head} has shape {arr.shape}, expected ({self.d_head},)")
            if not np.isfinite(arr).all():
                raise ValueError(f"shift of L{layer}H{head} holds NaN or inf")
            shifts[(int(layer), int(head))] = arr
        scales = {(int(layer), int(head)): float(s) for (layer, head), s in self.scales.items()}
        for layer, head in [*shifts, *scales]:
            if not 0 <= head < self.n_heads or layer < 0:
                raise ValueError(f"head L{layer}H{head} outside the model's {self.n_heads} heads per layer")
        if not all(np.isfinite(s) for s in scales.values()):
            raise ValueError("head scales must be finite")
        object.__setattr__(self, "shifts", dict(sorted(shifts.items())))
        object.__setattr__(self, "scales", dict(sorted(scales.items())))

    @property
    def heads(self) -> list[Head]:
        return sorted(set(self.shifts) | set(self.scales))

    @property
    def layers(self) -> list[int]:
        return sorted({layer for layer, _ in self.heads})

    def layer_tensors(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """(scale - 1 `[n_heads, 1]`, shift `[n_heads, d_head]`) of one layer; untouched heads hold zeros."""
        gain = np.zeros((self.n_heads, 1), dtype=np.float32)
        shift = np.zeros((self.n_heads, self.d_head), dtype=np.float32)
        for (at, head), s in self.scales.items():
            if at == layer:
                gain[head, 0] = s - 1.0
        for (at, head), vec in self.shifts.items():
            if at == layer:
                shift[head] = vec
        return gain, shift


def head_shift_residual(model: ChatModel, edit: HeadEdit) -> dict[int, np.ndarray]:
    """Each layer's `sum_h W_O[:, h] @ shift_h` `[d_model]`: what the shifts add to hook_attn_out.

    Scales are not included (they are not constant: see the module docstring).

    Example:
        >>> head_shift_residual(model, HeadEdit(9, 64, shifts={(23, 0): s}))[23].shape  # doctest: +SKIP
        (576,)
    """
    out: dict[int, np.ndarray] = {}
    for layer in sorted({layer for layer, _ in edit.shifts}):
        w = o_proj(model, layer).weight.detach().double().cpu()  # [d_model, n_heads*d_head]
        _, shift = edit.layer_tensors(layer)  # [n_heads, d_head]
        out[layer] = (w @ torch.from_numpy(shift.reshape(-1)).double()).numpy().astype(np.float32)
    return out


def _layer_fn(edit: HeadEdit, layer: int, where: RowPositions, device: torch.device,
              dtype: torch.dtype) -> TensorFn:
    gain_np, shift_np = edit.layer_tensors(layer)
    gain = torch.from_numpy(gain_np).to(device=device, dtype=dtype)  # [n_heads, 1]
    shift = torch.from_numpy(shift_np).to(device=device, dtype=dtype)  # [n_heads, d_head]
    strength = where.strength.to(device=device, dtype=dtype)
    s = strength.view(-1, 1, 1, 1) if strength.dim() == 1 else strength

    def fn(z: torch.Tensor) -> torch.Tensor:
        zh = z.reshape(*z.shape[:-1], edit.n_heads, edit.d_head)  # [batch, pos, n_heads, d_head]
        delta = s * (gain * zh + shift)  # [batch, pos, n_heads, d_head]
        if where.mask is not None:
            delta = where.mask[:, :, None, None].to(z.dtype) * delta
        return (zh + delta).reshape(z.shape)

    return fn


@contextmanager
def steer_heads(
    model: ChatModel, edit: HeadEdit, strength: Strength = 1.0, *, positions: str = "all",
    prompt_lengths: Lengths | None = None,
) -> Iterator[HeadEdit]:
    """Apply `edit` to every forward pass of `model.hf` inside the block; hooks are always removed.

    Args:
        model: the model.
        edit: per-head shifts and scales (`HeadEdit`).
        strength: a float, or one per batch row (list or 1-D tensor) for a batched sweep;
            0 leaves the model unchanged, 1 applies the edit as written.
        positions: "all", "prompt" or "generated" (as in `steering.steer`).
        prompt_lengths: real prompt tokens per row (or one int), needed by "prompt" and "generated".

    Yields:
        The edit.

    Raises:
        ValueError: unknown positions, missing prompt_lengths, a head outside the model, an edit made for
            another head layout, or (at the first forward) a per-row count that differs from the batch.

    Example:
        >>> with steer_heads(model, HeadEdit(9, 64, scales={(23, 0): 0.0})) :  # doctest: +SKIP
        ...     model.hf(**batch)
    """
    if positions not in POSITIONS:
        raise ValueError(f"unknown positions {positions!r}: choose from {', '.join(POSITIONS)}")
    if positions != "all" and prompt_lengths is None:
        raise ValueError(f"positions={positions!r} needs prompt_lengths (real prompt tokens per row)")
    if (edit.n_heads, edit.d_head) != (model.n_heads, model.d_head):
        raise ValueError(f"edit is for {edit.n_heads} heads of {edit.d_head}, the model has "
                         f"{model.n_heads} of {model.d_head}")
    bad = [layer for layer in edit.layers if layer >= model.n_layers]
    if bad:
        raise ValueError(f"edit touches layer {bad[0]}, outside the model's layers 0..{model.n_layers - 1}")
    strength_t = torch.as_tensor(strength, dtype=torch.float32)
    if strength_t.dim() > 1 or not torch.isfinite(strength_t).all():
        raise ValueError(f"strength must be a finite number or one per row, got {strength_t.tolist()}")
    param = next(model.hf.parameters())
    lengths = None if prompt_lengths is None else torch.as_tensor(prompt_lengths, dtype=torch.long).to(param.device)
    where = RowPositions(positions, lengths, strength_t, "steer_heads")
    fns = {Site(layer, "attn.hook_z"): _layer_fn(edit, layer, where, param.device, param.dtype)
           for layer in edit.layers}
    with hooks_on(model, fns, before_forward=where.begin_call):
        yield edit


@dataclass(frozen=True, eq=False)
class HeadSpec:
    """A head edit without its strength: the head-level counterpart of `steering.apply.spec.SteerSpec`.

    It has SteerSpec's `positions`, `context(model, strengths, prompt_tokens)` and `describe()`, so
    `steering.evaluation.evaluate.score_strengths` scores it the same way (K strengths in one batched pass, the frozen
    prefix for positions "generated", whose start follows `steering.apply.spec.GENERATED_OFFSET`).

    Args:
        edit: the per-head shifts and scales.
        positions: "all", "prompt" or "generated".
        label: the curve's name in a sweep.

    Example:
        >>> spec = HeadSpec(HeadEdit(9, 64, scales={(23, 0): 0.0}), positions="generated")  # doctest: +SKIP
        >>> cells = score_strengths(model, test, spec, [0.5, 1.0])  # doctest: +SKIP
    """

    edit: HeadEdit
    positions: str = "all"
    label: str = "heads"

    def context(self, model: ChatModel, strengths: float | Sequence[float],
                prompt_tokens: Sequence[int]) -> AbstractContextManager[object]:
        """`steer_heads(...)` for a batch: one strength per row (or one for all) and each row's prompt tokens."""
        return steer_heads(model, self.edit, strengths if isinstance(strengths, float | int) else list(strengths),
                           positions=self.positions, prompt_lengths=steer_lengths(prompt_tokens))

    def describe(self) -> str:
        heads = ",".join(f"L{layer}H{head}" for layer, head in self.edit.heads)
        return f"{self.label} @ heads {heads}, positions {self.positions}"
