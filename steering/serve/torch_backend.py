"""The torch decoding backend: continuous batching on the HF model, each row with its own steering.

Rows join by a prefill: the rows admitted together run in one forward,
right-padded (each row's real tokens first, so its positions and its last
prompt token are where `steer()` would see them), and each row's first token
comes from its own last prompt token (the decoder stack's output there, then
the unembedding: greedy needs no more). Their KV caches are merged into the
running left-padded batch (`BatchCache`); every `step` decodes one token for
all live rows in one forward; a released row leaves by index selection before
the next step. Each
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

from interp.models.architectures import module_at
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
        prefill_tokens: most new tokens (rows x longest prompt) in one prefill forward.
    """

    def __init__(self, model: ChatModel, prefix: Sequence[int] = (), prefill_tokens: int = 4096) -> None:
        self.model = model
        self.prefix = tuple(int(t) for t in prefix)
        self.prefill_tokens = prefill_tokens
        layout = model.layout
        # the decoder stack (hooks read its calls) and the unembedding: a prefill needs each row's own last position
        self._body = module_at(model.hf, layout.layers.rsplit(".", 1)[0])
        self._unembed = module_at(model.hf, layout.unembed)
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
        """Prefill the rows (in right-padded batches), merge them into the running batch; their first tokens.

        All or nothing: the batch is changed only after every prefill succeeded.
        """
        fresh: list[_Row] = []
        cached: dict[int, int] = {}
        prefills = []
        with torch.inference_mode():
            for group in self._groups(rows):
                made, cache, widths, reused = self._prefill(group)
                fresh += made
                prefills.append((cache, widths))
                cached.update({r.key: reused for r in made})
            for cache, widths in prefills:
                self._cache.join(cache, widths)
        self._rows += fresh
        self._steering = None
        by_key = {r.key: r for r in fresh}
        return [Token(q.key, by_key[q.key].last, by_key[q.key].steered if q.steer is not None else None,
                      cached[q.key]) for q in rows]

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

    def _groups(self, rows: Sequence[RowRequest]) -> list[list[tuple[RowRequest, SteeringPlan | None, int]]]:
        """Rows with their validated plan and reused prefix length, grouped for one prefill forward each: rows
        that reuse the prefix apart from the others, sorted by length, at most `prefill_tokens` padded tokens."""
        planned = []
        for row in rows:
            plan = None if row.steer is None else row_plan(self.model, row.steer, len(row.token_ids))
            planned.append((row, plan, len(self.prefix) if self._reuses_prefix(row, plan) else 0))
        groups: list[list[tuple[RowRequest, SteeringPlan | None, int]]] = []
        for reused in sorted({p[2] for p in planned}):
            same = sorted((p for p in planned if p[2] == reused), key=lambda p: len(p[0].token_ids))
            group: list[tuple[RowRequest, SteeringPlan | None, int]] = []
            for item in same:
                if _token_gated(item[0]):  # alone: a per-token gate must not read padding ("steered" would lie)
                    groups.append([item])
                    continue
                if group and (len(group) + 1) * (len(item[0].token_ids) - reused) > self.prefill_tokens:
                    groups.append(group)
                    group = []
                group.append(item)
            if group:
                groups.append(group)
        return groups

    def _prefill(self, group: list[tuple[RowRequest, SteeringPlan | None, int]]
                 ) -> tuple[list[_Row], DynamicCache, list[int], int]:
        """One forward of a group's prompts, right-padded after the shared prefix they reuse (if any): each
        row's first token from its own last prompt token; its KV in the first `len(prompt)` columns."""
        reused = group[0][2]
        device = self.model.device
        lengths = [len(q.token_ids) for q, _, _ in group]
        width = max(lengths) - reused
        ids = torch.full((len(group), width), int(self.model.tokenizer.pad_token_id or 0), dtype=torch.long)
        mask = torch.zeros(len(group), reused + width, dtype=torch.long)
        for r, (q, _, _) in enumerate(group):
            ids[r, : lengths[r] - reused] = torch.tensor(q.token_ids[reused:], dtype=torch.long)
            mask[r, : lengths[r]] = 1
        positions = torch.arange(reused, reused + width).expand(len(group), width)
        rows = [_Row(q.key, n, q.steer, plan, last=-1) for (q, plan, _), n in zip(group, lengths, strict=True)]
        steering = None
        if any(plan is not None for _, plan, _ in group):
            steering = rows_steering(self.model, [q.steer for q, _, _ in group], lengths, [p for _, p, _ in group])
        past = self._prefix_cache(len(group)) if reused else None
        with self._hooks(steering, rows) as handle:
            out = self._body(input_ids=ids.to(device), attention_mask=mask.to(device),
                             position_ids=positions.to(device), past_key_values=past, use_cache=True)
        self._carry(handle, rows)
        last = torch.tensor([n - reused - 1 for n in lengths], device=device)
        hidden = out.last_hidden_state[torch.arange(len(group), device=device), last]  # [rows, d_model]
        tokens = self._unembed(hidden).argmax(-1).tolist()
        for row, token in zip(rows, tokens, strict=True):
            row.last = int(token)
        return rows, out.past_key_values, lengths, reused

    def _reuses_prefix(self, request: RowRequest, plan: SteeringPlan | None) -> bool:
        """Whether the row starts with the shared prefix and its steering leaves the prefix's tokens alone."""
        k = len(self.prefix)
        n = len(request.token_ids)
        if k == 0 or n <= k or request.token_ids[:k] != self.prefix:
            return False
        return plan is None or (plan.positions == "generated" and plan.prompt_lengths is not None
                                and int(plan.prompt_lengths.reshape(-1)[0]) >= k)

    def _prefix_cache(self, rows: int) -> DynamicCache:
        """A fresh cache of `rows` rows holding the shared prefix's KV (computed unsteered on first use)."""
        if self._prefix_kv is None:
            device = self.model.device
            ids = torch.tensor([self.prefix], dtype=torch.long, device=device)
            out = self._body(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
            self._prefix_kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        return DynamicCache(ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1))
                                            for k, v in self._prefix_kv])

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


def _token_gated(row: RowRequest) -> bool:
    return row.steer is not None and row.steer.gate is not None and row.steer.gate.per == "token"
