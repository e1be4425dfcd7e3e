"""`steer`: a context manager that steers a model's forward passes and `generate`, then cleans up.

Hooks go in through `interp.models.hooks.hooks_on` (the one site-to-module mapping)
and are removed in `finally`, also when the body raises. One more pre-hook on
the decoder stack (`hooks_on(before_forward=...)`; `model.model` for Llama) reads each call's batch size,
attention mask and KV-cache length, so positions are tracked in absolute
terms: in a cached decoding step the hooks see one new token, and its real
index is the cache length plus its column minus the row's leading pads.

- modes, positions and their exact formulas: `steering.apply.interventions`;
- probe gating: `steering.artifacts.probe_gate.ProbeGate`;
- the same interventions through nnsight and TransformerLens: `steering.apply.parity`.

Example:
    >>> batch = model.tokenizer(prompts, return_tensors="pt", padding=True)  # doctest: +SKIP
    >>> with steer(model, vector, -4.0, layers=[8, 10], positions="generated",
    ...            prompt_lengths=batch["attention_mask"].sum(1)):  # doctest: +SKIP
    ...     out = model.hf.generate(**batch, max_new_tokens=40, do_sample=False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from interp.models.hooks import KIND_ORDER, hooks_on
from interp.sites import Site, parse_site
from steering.apply.interventions import (
    ForwardCall,
    Lengths,
    SteeringPlan,
    Strength,
    build_plan,
    forward_call,
    last_prompt_column,
    leading_pads,
)
from steering.artifacts.probe_gate import GATE_MODES, ProbeGate

if TYPE_CHECKING:
    from interp.models.loading import ChatModel
    from steering.artifacts.steering_vector import SteeringVector


@dataclass
class _Call:
    """What the pre-hook learned about the forward call in flight."""

    forward: ForwardCall  # rows, new tokens, tokens already in the KV cache, the 2-D mask (or None)
    lead: torch.Tensor | None  # [batch] leading pads (only when a last_prompt gate needs it)
    mask: torch.Tensor | None  # [batch, n_new] bool: where to steer (None: everywhere)


class Steering:
    """The handle `steer` yields: its plan, and where the last sequence was steered.

    Records cover the latest sequence: a forward at cache offset 0 starts a new
    one, cached decoding steps append to it. After `generate` with KV cache the
    records span the prompt and every generated token but the last (which is
    never fed back).
    """

    def __init__(self, plan: SteeringPlan, gate: ProbeGate | None, gate_site: Site | None,
                 gate_lengths: torch.Tensor | None = None) -> None:
        self.plan = plan
        self.gate = gate
        self.gate_site = gate_site
        # the prompt lengths a last_prompt gate reads at (its token: length - 1); default the plan's
        self.gate_lengths = gate_lengths if gate_lengths is not None else plan.prompt_lengths
        self._call: _Call | None = None
        self._held: torch.Tensor | None = None  # [batch] row decisions of a last_prompt gate
        self._steered: list[torch.Tensor | None] = []  # per call: [batch, n_new] or None (everywhere)
        self._sizes: list[tuple[int, int]] = []
        self._scores: list[torch.Tensor] = []  # per call: [batch, n_new]
        self._gate_on: list[torch.Tensor] = []

    @property
    def steered(self) -> torch.Tensor | None:
        """Tokens of the latest sequence the intervention reached `[batch, seen]` bool (None before a forward)."""
        if not self._sizes:
            return None
        parts = [m if m is not None else torch.ones(b, n, dtype=torch.bool) for m, (b, n) in
                 zip(self._steered, self._sizes, strict=True)]
        return torch.cat([p.cpu() for p in parts], dim=1)

    def rows_steered(self) -> torch.Tensor | None:
        """Rows steered at least once in the latest sequence `[batch]` bool."""
        steered = self.steered
        return None if steered is None else steered.any(1)

    @property
    def gate_scores(self) -> torch.Tensor | None:
        """The gate's score at each token of the latest sequence `[batch, seen]` (None without a gate)."""
        return torch.cat([s.cpu() for s in self._scores], dim=1) if self._scores else None

    @property
    def gate_on(self) -> torch.Tensor | None:
        """Where the gate let steering through `[batch, seen]` bool, before the positions rule."""
        return torch.cat([g.cpu() for g in self._gate_on], dim=1) if self._gate_on else None

    # -- hook bodies -----------------------------------------------------------------
    def begin_call(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Forward pre-hook on the decoder stack: position bookkeeping for this call."""
        call = forward_call(args, kwargs, "steer")
        if call.attention_mask is not None and call.attention_mask.dim() != 2:
            if self.plan.positions != "all" or self.gate is not None:
                raise ValueError("steer: positions and gates need a 2-D attention_mask [batch, seq], got "
                                 f"{call.attention_mask.dim()}-D")
            call = replace(call, attention_mask=None)
        batch, n_new = call.batch, call.n_new
        mask = self.plan.position_mask(batch, n_new, call.offset, call.attention_mask)
        lead = None
        if self.gate is not None and self.gate.per == "last_prompt":
            lead = leading_pads(call.attention_mask, batch, call.device)
        if call.offset == 0:
            self._steered, self._sizes, self._scores, self._gate_on = [], [], [], []
            self._held = torch.zeros(batch, dtype=torch.bool, device=call.device)
        self._call = _Call(call, lead, mask)
        if self.gate is None:
            self._steered.append(mask)
            self._sizes.append((batch, n_new))

    def _current(self) -> _Call:
        if self._call is None:
            raise RuntimeError("steer: a hooked layer ran outside a forward of the decoder stack")
        return self._call

    def gate_call(self, scorer: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor) -> None:
        """Score `h` `[batch, n_new, d]` at the gate site and narrow this call's mask."""
        assert self.gate is not None
        call = self._current()
        batch = call.forward.batch
        score = scorer(h)  # [batch, n_new]
        on = self.gate.decide(score)
        if call.lead is not None and self.gate_lengths is not None:
            if self.gate_lengths.dim() == 1 and len(self.gate_lengths) != batch:
                raise ValueError(f"gate_lengths has {len(self.gate_lengths)} values but the batch has {batch} rows")
            last_col, known = last_prompt_column(call.forward, call.lead, self.gate_lengths)  # [batch] each
        else:
            last_col = torch.zeros(batch, dtype=torch.long, device=h.device)
            known = torch.zeros(batch, dtype=torch.bool, device=h.device)
        held = self._held if self._held is not None else torch.zeros(batch, dtype=torch.bool, device=h.device)
        gate_mask, self._held = GATE_MODES[self.gate.per](on, last_col, known, held)
        call.mask = gate_mask if call.mask is None else call.mask & gate_mask
        self._scores.append(score.detach())
        self._gate_on.append(gate_mask)
        self._steered.append(call.mask)
        self._sizes.append((batch, call.forward.n_new))

    def apply(self, site: Site, h: torch.Tensor) -> torch.Tensor:
        return self.plan.apply(site, h, self._current().mask)


def validate_gate(model: ChatModel, plan: SteeringPlan, gate: ProbeGate, gate_lengths: torch.Tensor | None) -> Site:
    """The gate's site, after checking its width, that it reads no later than the plan's first steered site,
    and that a last_prompt gate has prompt lengths to find that token.

    Raises:
        ValueError: naming the check that failed.
    """
    gate.check_compatible(model.d_model)
    site = parse_site(f"blocks.{gate.layer}.{gate.site}", model.n_layers)
    first = plan.sites[0]
    if (site.layer, KIND_ORDER[site.kind]) > (first.layer, KIND_ORDER[first.kind]):
        raise ValueError(
            f"gate reads {site.name}, after the first steered site {first.name}: the gate must read "
            "an unsteered residual, at or before the first steered site"
        )
    if gate.per == "last_prompt" and plan.prompt_lengths is None and gate_lengths is None:
        raise ValueError("a gate with per='last_prompt' needs prompt_lengths (or gate_lengths) to find the last "
                         "prompt token")
    return site


@contextmanager
def steer(
    model: ChatModel,
    vector: SteeringVector,
    strength: Strength,
    layers: int | Sequence[int] | range | None = None,
    positions: str = "all",
    mode: str = "add",
    *,
    value: float | None = None,
    prompt_lengths: Lengths | None = None,
    gate: ProbeGate | None = None,
    gate_lengths: Lengths | None = None,
    force: bool = False,
) -> Iterator[Steering]:
    """Steer every forward pass of `model.hf` inside the block; hooks are always removed.

    Works for scoring (`model.hf(**batch)`) and for `model.hf.generate(...)`
    with or without KV cache; several forwards in one block are fine (a call
    at cache offset 0 starts a new sequence).

    Args:
        model: the model to steer.
        vector: per-layer raw vectors (`vector.site_kind` is the site steered).
        strength: a float, or one per batch row (list or 1-D tensor) to sweep K
            strengths in one batched pass; the count is checked at the first forward.
        layers: an int, a list or a range; None = every layer of the vector.
            Each layer uses its own vector.
        positions: "all", "prompt" (the prompt's tokens) or "generated" (every
            token after the prompt, as CAA does).
        mode: "add" (h + s v), "ablate" (h - s (h.u) u) or "clamp" (projection
            on u set to s |v|, or to `value`); see `steering.apply.interventions`.
        value: clamp only: the projection to set; strength is then ignored.
        prompt_lengths: real (unpadded) prompt tokens per row, or one int, for
            "prompt"/"generated" and for a last_prompt gate. With any padding side
            give the unpadded lengths, e.g. `attention_mask.sum(1)` of the
            tokenized prompts; the leading pads are read from the attention mask.
        gate: steer only where this probe's score exceeds its threshold.
        gate_lengths: for a `per="last_prompt"` gate, the prompt lengths whose last token it reads
            (default `prompt_lengths`). `steering.apply.spec` passes the real prompt lengths here while
            `prompt_lengths` carries the "generated" offset, so the gate reads the last prompt token,
            the `last_prompt` position its probe was trained on.
        force: use a vector made on a model with another weights hash.

    Yields:
        A `Steering` handle: `.plan`, `.steered`, `.rows_steered()`, `.gate_scores`, `.gate_on`.

    Raises:
        VectorMismatchError, ValueError: at entry for a bad vector, mode, layer,
            positions or gate; at the first forward for a per-row count that
            differs from the batch.

    Example:
        >>> with steer(model, vector, [0.0, 2.0, 4.0, 8.0], layers=10) as s:  # doctest: +SKIP
        ...     logits = model.hf(**batch_of_4).logits
    """
    plan = build_plan(model, vector, strength, layers, positions, mode, value, prompt_lengths, force)
    lengths_t = None
    if gate_lengths is not None:
        lengths_t = torch.as_tensor(gate_lengths, dtype=torch.long).to(plan.strength.device)
        if lengths_t.dim() > 1 or bool((lengths_t < 1).any()):
            raise ValueError(f"gate_lengths must be one int >= 1 or one per row, got {lengths_t.tolist()}")
    gate_site = validate_gate(model, plan, gate, lengths_t) if gate is not None else None
    handle = Steering(plan, gate, gate_site, lengths_t)
    fns: dict[Site, Callable[[torch.Tensor], torch.Tensor | None]] = {}
    if gate is not None and gate_site is not None:
        scorer = gate.scorer(plan.strength.device, plan.strength.dtype)
        steer_here = gate_site in plan.vectors

        def gate_fn(h: torch.Tensor) -> torch.Tensor | None:
            handle.gate_call(scorer, h)
            return handle.apply(gate_site, h) if steer_here else None

        fns[gate_site] = gate_fn
    for site in plan.sites:
        if site not in fns:
            fns[site] = _steer_fn(handle, site)
    try:
        with hooks_on(model, fns, before_forward=handle.begin_call):
            yield handle
    finally:
        handle._call = None


def _steer_fn(handle: Steering, site: Site) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(h: torch.Tensor) -> torch.Tensor:
        return handle.apply(site, h)

    return fn
