"""What a steering intervention does to one residual tensor: modes, positions, a validated plan.

The plan is backend-free: `steering.steer` applies it through forward hooks,
`steering.apply.parity` through nnsight and the TransformerLens bridge, so the
three share one implementation of every mode.

Modes (a registry; each returns the change `delta` to add to `h`):

| mode     | result                              | strength `s`                          |
| -------- | ----------------------------------- | ------------------------------------- |
| `add`    | `h + s * v`                         | multiplies the raw vector             |
| `ablate` | `h - s * (h . u) u`                 | multiplies the removed part: 1 = full ablation, 0 = no-op, 2 = reflection |
| `clamp`  | `h + (c - h . u) u`, `c = s * abs(v)` | sets the projection on `u` to `s` times the vector's norm; `value=` sets `c` directly (then `s` is ignored). Strength 0 clamps to 0 (= full ablation), not a no-op. |

`u = v / |v|` is the unit direction of the layer's raw vector `v`.

Positions (a registry over the real token index `t` of each row, counted from
the first non-pad token, and the row's prompt length `P`):
`all` (every token), `prompt` (`t < P`), `generated` (`t >= P`, CAA's choice).
A forward pre-hook on the decoder stack reads each call (`forward_call`: rows,
new tokens, KV-cache offset, mask); `position_mask` turns it into where each row
steers, and `last_prompt_column` finds the token a last_prompt gate reads. `steer()`,
per-row steering (`steering.apply.rows`) and head shifts (`steering.methods.head_steer`)
all go through these three.

Example:
    >>> plan = build_plan(model, vector, strength=4.0, layers=[3], mode="add")  # doctest: +SKIP
    >>> h2 = plan.apply(plan.sites[0], h, mask=None)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import torch

from interp.models.hooks import execution_order
from interp.sites import Site, parse_site

if TYPE_CHECKING:
    from interp.models.loading import ChatModel
    from steering.artifacts.steering_vector import SteeringVector

STEERABLE_KINDS = ("hook_resid_pre", "hook_resid_post", "hook_attn_out", "hook_mlp_out")

Strength: TypeAlias = float | Sequence[float] | torch.Tensor
Lengths: TypeAlias = int | Sequence[int] | torch.Tensor


@dataclass(frozen=True)
class LayerVector:
    """One layer's raw vector `[d_model]`, its unit direction and its norm (model dtype and device)."""

    raw: torch.Tensor  # [d_model]
    unit: torch.Tensor  # [d_model]
    norm: float


# strength is a 0-dim tensor or [batch, 1, 1]; value is clamp's explicit target
ModeFn = Callable[[torch.Tensor, LayerVector, torch.Tensor, float | None], torch.Tensor]


def _add(h: torch.Tensor, vec: LayerVector, strength: torch.Tensor, value: float | None) -> torch.Tensor:
    return strength * vec.raw  # [d] or [batch, 1, d]


def _ablate(h: torch.Tensor, vec: LayerVector, strength: torch.Tensor, value: float | None) -> torch.Tensor:
    proj = (h @ vec.unit).unsqueeze(-1)  # [batch, pos, 1]
    return -(strength * proj) * vec.unit  # [batch, pos, d]


def _clamp(h: torch.Tensor, vec: LayerVector, strength: torch.Tensor, value: float | None) -> torch.Tensor:
    target = strength * vec.norm if value is None else value  # scalar, 0-dim or [batch, 1, 1]
    proj = (h @ vec.unit).unsqueeze(-1)  # [batch, pos, 1]
    return (target - proj) * vec.unit  # [batch, pos, d]


MODES: dict[str, ModeFn] = {"add": _add, "ablate": _ablate, "clamp": _clamp}


def _all(real_pos: torch.Tensor, prompt_len: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(real_pos, dtype=torch.bool)


def _prompt(real_pos: torch.Tensor, prompt_len: torch.Tensor) -> torch.Tensor:
    return real_pos < prompt_len.unsqueeze(1)


def _generated(real_pos: torch.Tensor, prompt_len: torch.Tensor) -> torch.Tensor:
    return real_pos >= prompt_len.unsqueeze(1)


# (real token index [batch, pos], prompt length [batch]) -> steer here [batch, pos] bool
POSITIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "all": _all,
    "prompt": _prompt,
    "generated": _generated,
}


def leading_pads(attention_mask: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
    """Pad tokens before each row's first real token `[batch]` (0 without a mask or with right padding)."""
    if attention_mask is None:
        return torch.zeros(batch, dtype=torch.long, device=device)
    return (attention_mask.cumsum(1) == 0).sum(1)  # [batch]


def real_positions(batch: int, n_new: int, offset: int, lead: torch.Tensor) -> torch.Tensor:
    """Real token index of each of the call's tokens `[batch, n_new]`: column minus leading pads."""
    cols = torch.arange(offset, offset + n_new, device=lead.device)  # [n_new]
    return cols.unsqueeze(0) - lead.unsqueeze(1)  # [batch, n_new]


@dataclass(frozen=True)
class ForwardCall:
    """What a forward pre-hook on the decoder stack reads of one call (the one reader `steer`, per-row steering
    and head shifts share): rows, new tokens, tokens already in the KV cache, the attention mask, the device."""

    batch: int
    n_new: int
    offset: int
    attention_mask: torch.Tensor | None
    device: torch.device


def forward_call(args: tuple[object, ...], kwargs: dict[str, object], who: str) -> ForwardCall:
    """Read a decoder-stack forward call's shape, KV-cache length and mask from its pre-hook arguments.

    Raises:
        RuntimeError: the call has neither `input_ids` nor `inputs_embeds` (`who` names the caller).
    """
    x = kwargs.get("input_ids", args[0] if args else None)
    if x is None:
        x = kwargs.get("inputs_embeds")
    if not isinstance(x, torch.Tensor):
        raise RuntimeError(f"{who}: the forward call has neither input_ids nor inputs_embeds")
    cache = kwargs.get("past_key_values")
    offset = int(cache.get_seq_length()) if cache is not None else 0  # type: ignore[attr-defined]
    mask = kwargs.get("attention_mask")
    return ForwardCall(int(x.shape[0]), int(x.shape[1]), offset, mask if isinstance(mask, torch.Tensor) else None,
                       x.device)


def position_mask(
    positions: str | Sequence[str], prompt_lengths: torch.Tensor | None, call: ForwardCall,
) -> torch.Tensor | None:
    """Where a positions rule steers in one forward call `[batch, n_new]` bool; None: everywhere.

    Args:
        positions: one rule of POSITIONS for every row, or one per row.
        prompt_lengths: 0-dim or `[batch]`, each row's `P` (the boundary between "prompt" and "generated",
            in real tokens); None only where every rule is "all".
        call: the forward call (`forward_call`): its rows, new tokens, KV-cache offset and mask.

    Raises:
        ValueError: prompt_lengths or per-row rules whose count differs from the batch.

    Example:
        >>> call = ForwardCall(2, 3, 1, torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]), torch.device("cpu"))
        >>> position_mask(["generated", "prompt"], torch.tensor([2, 2]), call).tolist()
        [[False, False, True], [True, False, False]]
    """
    rules = [positions] if isinstance(positions, str) else list(positions)
    if prompt_lengths is None or all(rule == "all" for rule in rules):
        return None
    batch = call.batch
    if prompt_lengths.dim() == 1 and len(prompt_lengths) != batch:
        raise ValueError(f"prompt_lengths has {len(prompt_lengths)} values but the batch has {batch} rows")
    if not isinstance(positions, str) and len(rules) != batch:
        raise ValueError(f"{len(rules)} positions rules but the batch has {batch} rows")
    device = prompt_lengths.device
    lead = leading_pads(call.attention_mask, batch, device).to(device)
    real = real_positions(batch, call.n_new, call.offset, lead)  # [batch, n_new]
    lengths = prompt_lengths.expand(batch)
    if isinstance(positions, str):
        return POSITIONS[positions](real, lengths)
    mask = torch.ones(batch, call.n_new, dtype=torch.bool, device=device)
    for name in dict.fromkeys(rules):
        if name != "all":
            rows = torch.tensor([rule == name for rule in rules], device=device)  # [batch]
            mask = torch.where(rows.unsqueeze(1), POSITIONS[name](real, lengths), mask)
    return mask


class RowPositions:
    """Where a per-row intervention applies in the forward call in flight: installed as the decoder stack's
    pre-hook (`begin_call`), it checks the per-row strength count and fills `mask` (`position_mask`).

    The one tracker of the non-vector runtimes (low-rank edits, head shifts, head ablations); `who` names the
    runtime in errors.
    """

    def __init__(self, positions: str, lengths: torch.Tensor | None, strength: torch.Tensor, who: str) -> None:
        self.positions, self.lengths, self.strength, self.who = positions, lengths, strength, who
        self.mask: torch.Tensor | None = None  # [batch, n_new] bool, None: everywhere

    def begin_call(self, module: object, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
        call = forward_call(args, kwargs, self.who)
        if self.strength.dim() == 1 and len(self.strength) != call.batch:
            raise ValueError(f"per-row strength has {len(self.strength)} values but the batch has {call.batch} rows")
        if self.positions != "all" and call.attention_mask is not None and call.attention_mask.dim() != 2:
            raise ValueError(f"{self.who}: positions need a 2-D attention_mask [batch, seq]")
        self.mask = position_mask(self.positions, self.lengths, call)


def last_prompt_column(
    call: ForwardCall, lead: torch.Tensor, prompt_tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Column of each row's last prompt token among the call's new tokens `[batch]`, and whether it is in the call.

    Args:
        call: the forward call.
        lead: `[batch]` leading pads (`leading_pads` of the call's mask).
        prompt_tokens: 0-dim or `[batch]` real prompt tokens (the last one is at real index `prompt_tokens - 1`).

    Example:
        >>> call = ForwardCall(2, 4, 0, None, torch.device("cpu"))
        >>> col, known = last_prompt_column(call, torch.tensor([0, 1]), torch.tensor([2, 4]))
        >>> col.tolist(), known.tolist()
        ([1, 4], [True, False])
    """
    column = lead + prompt_tokens.expand(call.batch) - 1 - call.offset  # [batch]
    return column, (column >= 0) & (column < call.n_new)


def _as_1d(value: Strength | Lengths, name: str, dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=dtype)
    if t.dim() > 1:
        raise ValueError(f"{name} must be a number or a 1-D list/tensor (one per row), got shape {tuple(t.shape)}")
    if t.dim() == 1 and len(t) == 0:
        raise ValueError(f"{name} is empty: give a number or one value per row")
    return t


@dataclass(frozen=True)
class SteeringPlan:
    """A validated intervention, ready to apply to residual tensors.

    Build it with `build_plan`. `sites` are in execution order.
    """

    sites: tuple[Site, ...]
    vectors: dict[Site, LayerVector]
    mode: str
    strength: torch.Tensor  # 0-dim, or [batch] for per-row strengths
    value: float | None
    positions: str
    prompt_lengths: torch.Tensor | None  # 0-dim or [batch], real (unpadded) prompt tokens per row

    @property
    def per_row(self) -> bool:
        return self.strength.dim() == 1

    def check_batch(self, batch: int) -> None:
        """Refuse per-row strengths or prompt lengths whose count differs from the batch."""
        if self.per_row and len(self.strength) != batch:
            raise ValueError(
                f"per-row strength has {len(self.strength)} values but the batch has {batch} rows; "
                "give one strength per row (or a single float)"
            )
        if self.prompt_lengths is not None and self.prompt_lengths.dim() == 1 and len(self.prompt_lengths) != batch:
            raise ValueError(f"prompt_lengths has {len(self.prompt_lengths)} values but the batch has {batch} rows")

    def position_mask(
        self, batch: int, n_new: int, offset: int, attention_mask: torch.Tensor | None
    ) -> torch.Tensor | None:
        """Where to steer in a forward call `[batch, n_new]` bool, or None for everywhere (`position_mask`).

        Args:
            batch: rows in the call.
            n_new: tokens in the call (1 in a cached decoding step).
            offset: tokens already in the KV cache before this call.
            attention_mask: the call's 2-D mask over all `offset + n_new` columns, if any.
        """
        self.check_batch(batch)
        call = ForwardCall(batch, n_new, offset, attention_mask, self.strength.device)
        return position_mask(self.positions, self.prompt_lengths, call)

    def apply(self, site: Site, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """`h` `[batch, pos, d]` after the intervention at `site`; `mask` `[batch, pos]` limits where."""
        strength = self.strength.view(-1, 1, 1) if self.per_row else self.strength
        delta = MODES[self.mode](h, self.vectors[site], strength, self.value)
        if mask is None:
            return h + delta
        return h + mask.unsqueeze(-1).to(h.dtype) * delta


def normalize_layers(
    layers: int | Sequence[int] | range | None, vector: SteeringVector, n_layers: int
) -> list[int]:
    """Steered layers: `None` = every layer of the vector; negatives count from the model's end."""
    requested = vector.layers if layers is None else [layers] if isinstance(layers, int) else list(layers)
    if not requested:
        raise ValueError("layers is empty: give an int, a list, a range, or None for all the vector's layers")
    out = []
    for layer in requested:
        if not isinstance(layer, int | np.integer):
            raise ValueError(f"layers must hold ints, got {layer!r}")
        normalized = layer + n_layers if layer < 0 else int(layer)
        if not 0 <= normalized < n_layers:
            raise ValueError(f"layer {layer} is outside the model's layers 0..{n_layers - 1}")
        if normalized not in vector.directions:
            raise ValueError(f"the vector has no layer {normalized} (it has {vector.layers})")
        out.append(normalized)
    return sorted(set(out))


def build_plan(
    model: ChatModel,
    vector: SteeringVector,
    strength: Strength,
    layers: int | Sequence[int] | range | None = None,
    positions: str = "all",
    mode: str = "add",
    value: float | None = None,
    prompt_lengths: Lengths | None = None,
    force: bool = False,
) -> SteeringPlan:
    """Validate everything that can be checked before a forward pass; return the plan.

    Args:
        model: the model to steer.
        vector: per-layer raw vectors; its `site_kind` names the site steered.
        strength: a float, or one per batch row (1-D list/tensor) for a batched sweep.
        layers: an int, a list or a range (None: every layer of the vector).
        positions: "all", "prompt" or "generated".
        mode: "add", "ablate" or "clamp" (see the module docstring).
        value: clamp only: the projection to set (strength is then ignored).
        prompt_lengths: real (unpadded) prompt tokens per row, or one int for all
            rows; needed by "prompt" and "generated". Padding side does not matter.
        force: use the vector on a model whose weights hash differs from the vector's.

    Raises:
        VectorMismatchError: d_model differs, or the weights hash differs without `force`.
        ValueError: unknown mode/positions, a layer outside the model or the vector,
            a non-finite vector or strength, missing prompt_lengths.

    Example:
        >>> plan = build_plan(model, vector, [0.0, 2.0, 4.0], layers=range(2, 5))  # doctest: +SKIP
    """
    if mode not in MODES:
        raise ValueError(f"unknown steering mode {mode!r}: choose from {', '.join(MODES)}")
    if positions not in POSITIONS:
        raise ValueError(f"unknown positions {positions!r}: choose from {', '.join(POSITIONS)}")
    if value is not None and mode != "clamp":
        raise ValueError(f"value= is for mode 'clamp' only, not {mode!r}")
    if value is not None and not np.isfinite(value):
        raise ValueError(f"clamp value must be finite, got {value}")
    vector.check_compatible(model.d_model, model.weights_hash, force=force)
    if vector.site_kind not in STEERABLE_KINDS:
        raise ValueError(f"cannot steer at {vector.site_kind!r}: choose one of {', '.join(STEERABLE_KINDS)}")
    param = next(model.hf.parameters())
    strength_t = _as_1d(strength, "strength", torch.float32)
    if not torch.isfinite(strength_t).all():
        raise ValueError(f"strength must be finite, got {strength_t.tolist()}")
    if value is not None and strength_t.dim() == 1:
        raise ValueError("clamp with an explicit value ignores strength: give a single float, not one per row")
    lengths_t: torch.Tensor | None = None
    if positions != "all" and prompt_lengths is None:
        raise ValueError(
            f"positions={positions!r} needs prompt_lengths (real prompt tokens per row, "
            "e.g. attention_mask.sum(1) of the tokenized prompts)"
        )
    if prompt_lengths is not None:
        lengths_t = _as_1d(prompt_lengths, "prompt_lengths", torch.long).to(param.device)
        if (lengths_t < 0).any():
            raise ValueError(f"prompt_lengths must be >= 0, got {lengths_t.tolist()}")
    sites = []
    vectors = {}
    for layer in normalize_layers(layers, vector, model.n_layers):
        raw_np = vector.directions[layer]
        if not np.isfinite(raw_np).all():
            raise ValueError(f"layer {layer}: vector holds NaN or inf")
        norm = float(np.linalg.norm(raw_np))
        if mode != "add" and norm == 0.0:
            raise ValueError(f"layer {layer}: mode {mode!r} needs a direction, the vector is zero")
        raw = torch.as_tensor(raw_np).to(device=param.device, dtype=param.dtype)
        site = parse_site(f"blocks.{layer}.{vector.site_kind}", model.n_layers)
        sites.append(site)
        vectors[site] = LayerVector(raw, raw / max(norm, 1e-12), norm)
    return SteeringPlan(
        sites=tuple(execution_order(sites)),
        vectors=vectors,
        mode=mode,
        strength=strength_t.to(device=param.device, dtype=param.dtype),
        value=value,
        positions=positions,
        prompt_lengths=lengths_t,
    )
