"""The torch decoding backend: continuous batching on the HF model, each row with its own steering.

A row joins by a batch-1 prefill (no padding, only the last position's
logits), and its KV cache is merged into the running left-padded batch
(`BatchCache`); every `step` decodes one token for all live rows in one
forward; a released row leaves by index selection before the next step. Each
row is steered through `steering.rows` (its vector, strength, layers,
positions, mode and gate, validated once at admission); the stacked per-row
plan is rebuilt only when the rows change, and each row's gate decision and
"steered so far" flag are carried from call to call (`RowsSteering.resume`),
so a row behaves exactly as `steer()` of that request alone.

Shared prefix: every chat prompt rendered by the template starts with the
same tokens (the default system turn and the user header; `Engine.shared_prefix`).
Their KV is computed once and copied into each new row whose steering cannot
touch them (unsteered rows, and rows steered at "generated" positions, which
start at the last prompt token), so only the rest of the prompt is prefilled.

Example:
    >>> backend = TorchBackend(model, prefix=engine.shared_prefix())  # doctest: +SKIP
    >>> backend.admit([RowRequest(1, prompt_ids, None)])  # doctest: +SKIP
    [Token(key=1, token=504, steered=None, cached=21)]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from transformers import DynamicCache

from interp.models.hooks import hooks_on
from steering.interventions import SteeringPlan
from steering.rows import RowsSteering, RowSteer, row_plan, rows_steering
from steering.serve.backend import RowRequest, Token
from steering.serve.batch_cache import BatchCache

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


@dataclass(eq=False)
class _Row:
    """A live row: its steering (validated plan), the token it feeds next, and its steering state."""

    key: int
    prompt_tokens: int
    steer: RowSteer | None
    plan: SteeringPlan | None
    last: int  # the token the next step feeds
    gate_open: bool = False  # held decision of a last_prompt gate
    steered: bool = False  # steering changed the row at some position


class TorchBackend:
    """`DecodeBackend` on a `ChatModel` (see the module docstring).

    Args:
        model: the served model.
        prefix: tokens every prompt is likely to start with (`Engine.shared_prefix`); empty: no prefix reuse.
    """

    def __init__(self, model: ChatModel, prefix: Sequence[int] = ()) -> None:
        self.model = model
        self.prefix = tuple(int(t) for t in prefix)
        self._rows: list[_Row] = []
        self._cache = BatchCache()
        self._prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._steering: tuple[RowsSteering, dict[Any, Any]] | None = None  # for self._rows; None: rebuild

    @property
    def live(self) -> int:
        return len(self._rows)

    def can_admit(self, row: RowRequest) -> bool:
        return True

    def admit(self, rows: Sequence[RowRequest]) -> list[Token]:
        """Prefill each row alone, merge them into the batch; their first tokens. All or nothing."""
        fresh: list[tuple[_Row, DynamicCache, Token]] = []
        with torch.inference_mode():
            for request in rows:
                fresh.append(self._prefill(request))
            self._cache.join([cache for _, cache, _ in fresh])
        self._rows += [row for row, _, _ in fresh]
        self._steering = None
        return [token for _, _, token in fresh]

    def step(self) -> list[Token]:
        """One forward of every live row's last token; one token each."""
        if not self._rows:
            return []
        rows = self._rows
        if self._steering is None and any(r.steer is not None for r in rows):
            self._steering = rows_steering(self.model, [r.steer for r in rows], [r.prompt_tokens for r in rows],
                                           [r.plan for r in rows])
        ids = torch.tensor([[r.last] for r in rows], dtype=torch.long)
        mask, positions = self._cache.step_inputs()
        device = self.model.device
        with torch.inference_mode(), self._hooks(self._steering, rows) as handle:
            out = self.model.hf(input_ids=ids.to(device), attention_mask=mask.to(device),
                                position_ids=positions.to(device), past_key_values=self._cache.cache, use_cache=True)
            self._cache.advance(mask)
        tokens = out.logits[:, -1].argmax(-1).tolist()
        self._carry(handle, rows)
        for row, token in zip(rows, tokens, strict=True):
            row.last = int(token)
        return [Token(r.key, r.last, r.steered if r.steer is not None else None) for r in rows]

    def release(self, keys: Sequence[int]) -> None:
        gone = set(keys)
        keep = [i for i, r in enumerate(self._rows) if r.key not in gone]
        if len(keep) == len(self._rows):
            return
        with torch.inference_mode():
            self._cache.keep(keep)
        self._rows = [self._rows[i] for i in keep]
        self._steering = None

    def reset(self) -> None:
        self._rows = []
        self._cache.clear()
        self._steering = None

    def _prefill(self, request: RowRequest) -> tuple[_Row, DynamicCache, Token]:
        n = len(request.token_ids)
        plan = None if request.steer is None else row_plan(self.model, request.steer, n)
        reused = len(self.prefix) if self._reuses_prefix(request, plan) else 0
        past = self._prefix_cache() if reused else None
        device = self.model.device
        ids = torch.tensor([request.token_ids[reused:]], dtype=torch.long, device=device)
        row = _Row(request.key, n, request.steer, plan, last=-1)
        steering = None if plan is None else rows_steering(self.model, [request.steer], [n], [plan])
        with self._hooks(steering, [row]) as handle:
            out = self.model.hf(input_ids=ids, attention_mask=torch.ones(1, n, dtype=torch.long, device=device),
                                position_ids=torch.arange(reused, n, device=device).unsqueeze(0),
                                past_key_values=past, use_cache=True, logits_to_keep=1)
        self._carry(handle, [row])
        row.last = int(out.logits[0, -1].argmax())
        return row, out.past_key_values, Token(row.key, row.last, row.steered if plan is not None else None, reused)

    def _reuses_prefix(self, request: RowRequest, plan: SteeringPlan | None) -> bool:
        """Whether the row starts with the shared prefix and its steering leaves the prefix's tokens alone."""
        k = len(self.prefix)
        n = len(request.token_ids)
        if k == 0 or n <= k or request.token_ids[:k] != self.prefix:
            return False
        return plan is None or (plan.positions == "generated" and plan.prompt_lengths is not None
                                and int(plan.prompt_lengths.reshape(-1)[0]) >= k)

    def _prefix_cache(self) -> DynamicCache:
        """A fresh cache holding the shared prefix's KV (computed unsteered on first use)."""
        if self._prefix_kv is None:
            device = self.model.device
            ids = torch.tensor([self.prefix], dtype=torch.long, device=device)
            out = self.model.hf(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True, logits_to_keep=1)
            self._prefix_kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        return DynamicCache(ddp_cache_data=self._prefix_kv)

    @contextmanager
    def _hooks(self, steering: tuple[RowsSteering, dict[Any, Any]] | None,
               rows: Sequence[_Row]) -> Iterator[RowsSteering | None]:
        """The rows' steering hooks for one forward, resumed from each row's carried state."""
        if steering is None:
            yield None
            return
        handle, fns = steering
        handle.resume(torch.tensor([r.gate_open for r in rows]), torch.tensor([r.steered for r in rows]))
        with hooks_on(self.model, fns, before_forward=handle.begin_call):
            yield handle

    @staticmethod
    def _carry(handle: RowsSteering | None, rows: Sequence[_Row]) -> None:
        if handle is None:
            return
        steered = handle.rows_steered()
        gate = handle.gate_state()
        for r, row in enumerate(rows):
            row.gate_open = bool(gate[r])
            row.steered = bool(steered[r]) if steered is not None else row.steered
