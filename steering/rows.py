"""Per-row steering: every row of a batch with its own vector, strength, layers, positions, mode and gate.

`steer()` gives each row its own strength of one vector; a server batches
requests that each chose another vector. `steer_rows` validates each row
exactly as `steer` does (one `build_plan` per row), then stacks the rows into
one `RowsPlan`: per steered site a `[batch, d_model]` table of additions
(`strength_r * v_r`, zeros for rows that do not steer there), so a batch of
differently steered requests costs one masked add per layer. Ablate and clamp
rows add a projection term `(c_r - k_r (h . u_r)) u_r` (ablate: c = 0, k = s;
clamp: c = s |v|, k = 1), computed only when a row uses them.

Positions follow `steering.spec`: a row's "generated" starts at its last
prompt token (GENERATED_OFFSET); a gate reads the real last prompt token.
Each gate runs at its own site on every row and decides for the rows that
chose it; a row's gate must read at or before its first steered site.

Example:
    >>> rows = [None, RowSteer(v, -4.0, (10,), "generated"), RowSteer(w, 2.0, (8, 9))]  # doctest: +SKIP
    >>> with steer_rows(model, rows, prompt_tokens=[31, 40, 28]) as handle:  # doctest: +SKIP
    ...     model.hf(**batch_of_three)
    >>> handle.rows_steered()  # doctest: +SKIP
    tensor([False,  True,  True])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from interp.models.hooks import execution_order, hooks_on
from interp.sites import Site
from steering.interventions import (
    ForwardCall,
    SteeringPlan,
    build_plan,
    forward_call,
    last_prompt_column,
    leading_pads,
    position_mask,
)
from steering.probe_gate import GATE_MODES, ProbeGate
from steering.spec import steer_lengths
from steering.steer import validate_gate
from steering.steering_vector import SteeringVector

if TYPE_CHECKING:
    from interp.models.loading import ChatModel

@dataclass(frozen=True, eq=False)
class RowSteer:
    """The steering of one batch row.

    Args:
        vector: raw per-layer vectors.
        strength: multiplier of the raw vector.
        layers: layers to steer (each with its own vector).
        positions: "all", "prompt" or "generated" (from the last prompt token on, `steering.spec`).
        mode: "add", "ablate" or "clamp".
        gate: steer only where (per="token") or rows for which (per="last_prompt") this probe reads pressure.
        force: use a vector made on another model hash.
    """

    vector: SteeringVector
    strength: float
    layers: tuple[int, ...]
    positions: str = "all"
    mode: str = "add"
    gate: ProbeGate | None = None
    force: bool = False


def row_plan(model: ChatModel, row: RowSteer, prompt_tokens: int) -> SteeringPlan:
    """Validate one row as `steer` would (vector, layers, mode, positions, strength, gate); return its plan.

    Raises:
        VectorMismatchError, ValueError: naming what is wrong with the row.
    """
    plan = build_plan(model, row.vector, float(row.strength), list(row.layers), row.positions, row.mode, None,
                      steer_lengths([prompt_tokens]), row.force)
    if row.gate is not None:
        validate_gate(model, plan, row.gate, torch.tensor([prompt_tokens]))
    return plan


@dataclass(frozen=True)
class ProjectionTerm:
    """`(target_r - keep_r (h . u_r)) u_r` at one site: ablate (0, s) and clamp (s |v| or value, 1) rows."""

    unit: torch.Tensor  # [batch, d_model] (zeros for add and unsteered rows)
    target: torch.Tensor  # [batch, 1, 1]
    keep: torch.Tensor  # [batch, 1, 1]


@dataclass(frozen=True)
class RowsPlan:
    """Stacked per-row plans, ready to apply. Build it with `stack_rows`."""

    sites: tuple[Site, ...]  # execution order, the union of the rows' sites
    add: dict[Site, torch.Tensor]  # [batch, d_model] strength_r * v_r (zeros where row r does not add)
    project: dict[Site, ProjectionTerm]  # ablate/clamp rows at this site; absent if none
    positions: tuple[str, ...]  # each row's positions rule ("all" for unsteered rows)
    prompt_lengths: torch.Tensor  # [batch] the "prompt"/"generated" boundary (prompt tokens - GENERATED_OFFSET)

    @property
    def batch(self) -> int:
        return len(self.positions)

    def position_mask(self, call: ForwardCall) -> torch.Tensor:
        """Where each row's positions rule steers in this call `[batch, n_new]` bool (`interventions.position_mask`)."""
        if call.batch != self.batch:
            raise ValueError(f"the plan has {self.batch} rows but the forward has {call.batch}")
        mask = position_mask(self.positions, self.prompt_lengths, call)
        return mask if mask is not None else torch.ones(call.batch, call.n_new, dtype=torch.bool,
                                                        device=self.prompt_lengths.device)

    def apply(self, site: Site, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`h` `[batch, pos, d]` with each row's intervention at `site`, where `mask` `[batch, pos]` allows."""
        delta = self.add[site].unsqueeze(1)  # [batch, 1, d]
        term = self.project.get(site)
        if term is not None:
            u = term.unit.unsqueeze(1)  # [batch, 1, d]
            proj = torch.matmul(h, term.unit.unsqueeze(-1))  # [batch, pos, 1]
            delta = delta + (term.target - term.keep * proj) * u  # [batch, pos, d]
        return h + mask.unsqueeze(-1).to(h.dtype) * delta


def stack_rows(plans: Sequence[SteeringPlan | None], like: torch.Tensor) -> RowsPlan:
    """One `RowsPlan` from single-row plans (None: an unsteered row).

    Args:
        plans: one plan per row, each built for a batch of one (`row_plan`).
        like: a tensor of the model's dtype and device.
    """
    batch = len(plans)
    present = [p for p in plans if p is not None]
    d_model = int(next(iter(present[0].vectors.values())).raw.shape[0]) if present else 0
    sites = execution_order(list({s for p in plans if p is not None for s in p.sites}))
    zeros = torch.zeros(batch, d_model, dtype=like.dtype, device=like.device)
    add = {s: zeros.clone() for s in sites}
    project: dict[Site, ProjectionTerm] = {}
    rules = ["all"] * batch
    lengths = torch.zeros(batch, dtype=torch.long, device=like.device)
    for r, plan in enumerate(plans):
        if plan is None:
            continue
        rules[r] = plan.positions
        if plan.prompt_lengths is not None:
            lengths[r] = plan.prompt_lengths.reshape(-1)[0]
        s = plan.strength  # 0-dim, model dtype
        for site, vec in plan.vectors.items():
            if plan.mode == "add":
                add[site][r] = s * vec.raw
                continue
            term = project.setdefault(site, ProjectionTerm(zeros.clone(), torch.zeros(batch, 1, 1, dtype=like.dtype,
                                      device=like.device), torch.zeros(batch, 1, 1, dtype=like.dtype, device=like.device)))
            term.unit[r] = vec.unit
            if plan.mode == "ablate":
                term.keep[r] = s
            else:  # clamp
                term.target[r] = s * vec.norm if plan.value is None else plan.value
                term.keep[r] = 1.0
    return RowsPlan(tuple(sites), add, project, tuple(rules), lengths)


class RowsSteering:
    """The handle `steer_rows` yields: the plan, each row's gate and which rows were steered."""

    def __init__(self, plan: RowsPlan, gates: Sequence[ProbeGate | None], prompt_tokens: torch.Tensor) -> None:
        self.plan = plan
        self.gates = list(gates)
        self.prompt_tokens = prompt_tokens  # [batch] real prompt tokens (a last_prompt gate reads the last one)
        self._distinct = list({id(g): g for g in gates if g is not None}.values())
        self._rows = {id(g): torch.tensor([x is g for x in gates], device=prompt_tokens.device) for g in self._distinct}
        self._held: dict[int, torch.Tensor] = {}
        self._mask: torch.Tensor | None = None  # [batch, n_new] positions of the call in flight
        self._gate_mask: torch.Tensor | None = None
        self._lead: torch.Tensor | None = None
        self._call: ForwardCall | None = None
        self._steered: torch.Tensor | None = None  # [batch] bool, latest sequence

    def rows_steered(self) -> torch.Tensor | None:
        """Rows whose mask let the intervention through at least once in the latest sequence `[batch]` bool."""
        return None if self._steered is None else self._steered.cpu()

    def resume(self, gate_open: torch.Tensor, steered: torch.Tensor) -> None:
        """Continue sequences whose earlier calls ran under another handle (a server regroups rows between
        decode steps): each row's held `last_prompt` gate decision and whether it was steered so far.

        Args:
            gate_open: `[batch]` bool, `gate_state()` of the earlier handle for these rows (False: none yet).
            steered: `[batch]` bool, `rows_steered()` of the earlier handle for these rows.
        """
        device = self.prompt_tokens.device
        self._held = {id(g): gate_open.to(device).clone() for g in self._distinct}
        self._steered = steered.to(device).clone()

    def gate_state(self) -> torch.Tensor:
        """Each row's held `last_prompt` gate decision `[batch]` bool (False for rows without one), for `resume`."""
        state = torch.zeros(len(self.gates), dtype=torch.bool)
        for g in self._distinct:
            held = self._held.get(id(g))
            if held is not None:
                state = torch.where(self._rows[id(g)].cpu(), held.cpu(), state)
        return state

    def begin_call(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Forward pre-hook on the decoder stack: this call's positions and a fresh gate mask."""
        call = forward_call(args, kwargs, "steer_rows")
        batch = call.batch
        if call.attention_mask is not None and call.attention_mask.dim() != 2:
            raise ValueError("steer_rows needs a 2-D attention_mask [batch, seq]")
        self._call = call
        self._mask = self.plan.position_mask(call)
        self._lead = leading_pads(call.attention_mask, batch, self._mask.device)
        self._gate_mask = torch.ones_like(self._mask)
        if call.offset == 0:
            self._held = {id(g): torch.zeros(batch, dtype=torch.bool, device=self._mask.device) for g in self._distinct}
            self._steered = torch.zeros(batch, dtype=torch.bool, device=self._mask.device)

    def gate_call(self, gate: ProbeGate, score: torch.Tensor) -> None:
        """Narrow the gate mask of `gate`'s rows from its scores `[batch, n_new]`."""
        assert self._gate_mask is not None and self._lead is not None and self._call is not None
        last_col, known = last_prompt_column(self._call, self._lead, self.prompt_tokens)  # [batch]
        if gate.per != "last_prompt":
            known = torch.zeros_like(known)
        mask, self._held[id(gate)] = GATE_MODES[gate.per](gate.decide(score), last_col, known, self._held[id(gate)])
        rows = self._rows[id(gate)].unsqueeze(1)
        self._gate_mask = torch.where(rows, mask, self._gate_mask)

    def apply(self, site: Site, h: torch.Tensor) -> torch.Tensor:
        if self._mask is None or self._gate_mask is None:
            raise RuntimeError("steer_rows: a hooked layer ran outside a forward of the decoder stack")
        mask = self._mask & self._gate_mask
        touched = (self.plan.add[site] != 0).any(-1)  # [batch]
        if site in self.plan.project:
            touched = touched | (self.plan.project[site].unit != 0).any(-1)
        if self._steered is not None:
            self._steered |= (mask.any(1) & touched)
        return self.plan.apply(site, h, mask)


@contextmanager
def steer_rows(
    model: ChatModel, rows: Sequence[RowSteer | None], prompt_tokens: Sequence[int]
) -> Iterator[RowsSteering]:
    """Steer each batch row with its own `RowSteer` (None: unsteered) inside the block; hooks always removed.

    Row r behaves exactly as a batch of one under `SteerSpec.context` with the
    same vector, strength, layers, positions, mode and gate.

    Args:
        model: the model.
        rows: one `RowSteer` or None per batch row.
        prompt_tokens: each row's rendered-prompt tokens (unpadded, before the GENERATED_OFFSET rule).

    Raises:
        VectorMismatchError, ValueError: at entry, for the first invalid row (its index is in the message).

    Example:
        >>> with steer_rows(model, [None, RowSteer(v, 4.0, (2,))], [12, 9]) as h:  # doctest: +SKIP
        ...     model.hf(**batch_of_two)
    """
    handle, fns = rows_steering(model, rows, prompt_tokens)
    try:
        with hooks_on(model, fns, before_forward=handle.begin_call):
            yield handle
    finally:
        handle._mask = None


def rows_steering(
    model: ChatModel, rows: Sequence[RowSteer | None], prompt_tokens: Sequence[int],
    plans: Sequence[SteeringPlan | None] | None = None,
) -> tuple[RowsSteering, dict[Site, Any]]:
    """The handle and the site functions `steer_rows` installs, for a caller that installs them per call
    (`hooks_on(model, fns, before_forward=handle.begin_call)`), as a server does while rows join and leave.

    Args:
        model: the model.
        rows: one `RowSteer` or None per batch row.
        prompt_tokens: each row's rendered-prompt tokens.
        plans: each row's `row_plan`, if the caller built them already (None: built and validated here).

    Raises:
        VectorMismatchError, ValueError: for the first invalid row (its index is in the message).
    """
    if len(rows) != len(prompt_tokens):
        raise ValueError(f"{len(rows)} rows but {len(prompt_tokens)} prompt lengths")
    if plans is None:
        built: list[SteeringPlan | None] = []
        for r, (row, n) in enumerate(zip(rows, prompt_tokens, strict=True)):
            try:
                built.append(None if row is None else row_plan(model, row, int(n)))
            except ValueError as e:
                raise type(e)(f"row {r}: {e}") from None
        plans = built
    like = next(model.hf.parameters())
    plan = stack_rows(plans, like)
    tokens = torch.tensor([int(n) for n in prompt_tokens], dtype=torch.long, device=like.device)
    handle = RowsSteering(plan, [None if row is None else row.gate for row in rows], tokens)
    fns: dict[Site, Any] = {}
    gate_sites: dict[Site, list[tuple[ProbeGate, Any]]] = {}
    for r, (row, p) in enumerate(zip(rows, plans, strict=True)):
        if row is not None and row.gate is not None and p is not None:
            site = validate_gate(model, p, row.gate, tokens[r : r + 1])
            if all(g is not row.gate for g, _ in gate_sites.get(site, [])):
                gate_sites.setdefault(site, []).append((row.gate, row.gate.scorer(like.device, like.dtype)))
    for site in execution_order(list(set(plan.sites) | set(gate_sites))):
        fns[site] = _site_fn(handle, site, gate_sites.get(site, []), site in plan.sites)
    return handle, fns


def _site_fn(handle: RowsSteering, site: Site, gates: list[tuple[ProbeGate, Any]], steered: bool) -> Any:
    def fn(h: torch.Tensor) -> torch.Tensor | None:
        for gate, scorer in gates:
            handle.gate_call(gate, scorer(h))
        return handle.apply(site, h) if steered else None

    return fn
