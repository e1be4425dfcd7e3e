"""THE scorer of answer choices: each example's context runs once (and, frozen, only its unsteered rest).

A batch of examples runs its shared context once (left-padded, KV cache
kept), then every choice's remaining tokens run on a copy of that cache in a
second, short pass: about one prompt per example instead of one per choice,
and the next-token distribution at the answer position (for the KL term)
comes free from the first pass. Given a `FrozenPrefix` (the unsteered KV of
each prompt but its last token) only the rest runs: what a sweep cell with
positions "generated" costs.

Tokenization is `interp.scoring.choices`: context = rendered prompt + scoring
prefix, each choice tokenized jointly with it, and a choice whose first
token merges with the context's end is scored from the merge point; the
shared part of an example is the shortest such common prefix.

`row_context` (`interp.scoring.choices.RowContext`) receives the example index
of every row of a forward pass and returns the context to run it in; it is
called for both passes (steering positions are tracked through the KV cache by
`steering.steer`).

The log-probabilities equal the plain one-sequence-per-choice computation of
`interp.scoring.reference` up to float error; the tests compare the two, steered and not.

Example:
    >>> out = score_choices_cached(model, examples, next_token_of={0, 3})  # doctest: +SKIP
    >>> out.table.columns.tolist(), out.next_logprobs[0].shape  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from interp.models.loading import ChatModel
from interp.scoring.choices import RowContext, choice_span, choice_table, scoring_context
from interp.tasks.example import Example


@dataclass(frozen=True)
class _Suffix:
    """Tokens to run after an example's shared prefix, and the log-probs to read."""

    choice: int  # -1: the rest of the context (only to read the next-token distribution)
    ids: list[int]  # input tokens after the prefix (may be empty)
    reads: list[tuple[int, int]]  # (position relative to the prefix end, -1 = its last token; target token id)


@dataclass(frozen=True)
class _Item:
    example: int
    prefix: list[int]
    suffixes: list[_Suffix]


@dataclass(frozen=True, eq=False)
class CachedScores:
    """The scores table (`interp.scoring.choices.choice_table`) and the requested next-token log-probabilities
    `{example: [vocab]}`."""

    table: pd.DataFrame
    next_logprobs: dict[int, torch.Tensor] = field(default_factory=dict)


def _items(model: ChatModel, examples: Sequence[Example]) -> list[_Item]:
    items = []
    for i, ex in enumerate(examples):
        text, context = scoring_context(model, ex)
        spans = [choice_span(model, ex, text, context, choice) for choice in ex.choices]
        p = min(start for _, start in spans)
        suffixes = [_Suffix(j, full[p : len(full) - 1], [(t - 1 - p, full[t]) for t in range(start, len(full))])
                    for j, (full, start) in enumerate(spans)]
        if p < len(context):  # a choice merged into the context's end: the rest of the context is a suffix row,
            suffixes.append(_Suffix(-1, context[p:], []))  # the next-token distribution is read at its last token
        items.append(_Item(i, context[:p], suffixes))
    return items


@dataclass(frozen=True, eq=False)
class FrozenPrefix:
    """The unsteered KV cache of each example's first tokens, reused by every strength.

    With `positions="generated"` the tokens before the last prompt token are
    never steered, and (causal attention) nothing after them changes them: their
    keys and values at every layer are the unsteered ones, for any strength. So
    they are computed once per test set and every cell runs only the rest (the
    last prompt token, the scoring prefix and the choice), which is what makes a
    generated-positions cell cost a fraction of a full pass.

    Args:
        index: example id -> row in `lengths` / `kv`.
        lengths: frozen tokens per example.
        kv: per example, per layer, (keys, values) `[kv_heads, frozen tokens, head_dim]`.
    """

    index: dict[str, int]
    lengths: tuple[int, ...]
    kv: tuple[tuple[tuple[torch.Tensor, torch.Tensor], ...], ...]


#: a token start every frozen example shares (the chat template's system turn) runs once when at least this long
MIN_SHARED = 4


def _shared_start(prefixes: Sequence[Sequence[int]]) -> list[int]:
    """The longest token list every one of `prefixes` starts with.

    Example:
        >>> _shared_start([[1, 2, 3], [1, 2, 4, 5]]), _shared_start([])
        ([1, 2], [])
    """
    if not prefixes:
        return []
    first = prefixes[0]
    n = min(len(p) for p in prefixes)
    for other in prefixes[1:]:
        n = next((i for i in range(n) if other[i] != first[i]), n)
    return list(first[:n])


def _prefix_kv(model: ChatModel, ids: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Unsteered per-layer (keys, values) `[1, kv_heads, len(ids), head_dim]` of one token list."""
    with torch.inference_mode():
        cache = model.hf.base_model(input_ids=torch.tensor([list(ids)], device=model.device),
                                    use_cache=True).past_key_values
    return [(layer.keys, layer.values) for layer in cache.layers]


def _expanded(kv: Sequence[tuple[torch.Tensor, torch.Tensor]], rows: int) -> Any:
    """A fresh DynamicCache holding `kv` repeated for `rows` rows (None when `kv` is empty)."""
    from transformers import DynamicCache

    if not kv:
        return None
    cache = DynamicCache()
    for layer, (keys, values) in enumerate(kv):
        cache.update(keys.expand(rows, -1, -1, -1).clone(), values.expand(rows, -1, -1, -1).clone(), layer)
    return cache


def frozen_prefix(
    model: ChatModel, examples: Sequence[Example], lengths: Sequence[int], batch_size: int = 16
) -> FrozenPrefix:
    """Unsteered KV of the first `lengths[i]` tokens of each example's context (at most all but one token).

    The tokens every example starts with (the chat template's system turn: a third to a half of a test prompt,
    all of it that a system-prompt variant adds) run once, at batch size 1, and every batch continues from a
    copy of their KV (`MIN_SHARED`).

    Args:
        model: the model (run unsteered).
        examples: the examples (ids must be unique).
        lengths: tokens to freeze per example, e.g. prompt tokens - GENERATED_OFFSET.
        batch_size: examples per pass.
    """
    items = _items(model, examples)
    frozen = [max(0, min(int(n), len(it.prefix) - 1)) for n, it in zip(lengths, items, strict=True)]
    shared = _shared_start([it.prefix[:n] for it, n in zip(items, frozen, strict=True) if n > 0])
    shared_kv = _prefix_kv(model, shared) if len(shared) >= MIN_SHARED else []
    start = len(shared) if shared_kv else 0
    pad = int(model.tokenizer.pad_token_id or 0)
    kv: list[tuple[tuple[torch.Tensor, torch.Tensor], ...]] = [()] * len(items)
    order = sorted(range(len(items)), key=lambda k: (frozen[k], k))
    for b0 in range(0, len(order), batch_size):
        batch = [k for k in order[b0 : b0 + batch_size] if frozen[k] > 0]
        if not batch:
            continue
        rest = [frozen[k] - start for k in batch]  # tokens after the shared start, per row
        width = max(rest)
        if width == 0:  # every row is the shared start itself
            for k in batch:
                kv[k] = tuple((keys[0].clone(), values[0].clone()) for keys, values in shared_kv)
            continue
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), start + width), dtype=torch.long)
        mask[:, :start] = 1
        for r, (k, n) in enumerate(zip(batch, rest, strict=True)):
            ids[r, width - n :] = torch.tensor(items[k].prefix[start : frozen[k]], dtype=torch.long)
            mask[r, start + width - n :] = 1
        position = (start + (mask[:, start:].cumsum(-1) - 1).clamp(min=0)).to(model.device)
        with torch.inference_mode():
            cache = model.hf.base_model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                        position_ids=position, past_key_values=_expanded(shared_kv, len(batch)),
                                        use_cache=True).past_key_values
        for r, n in enumerate(rest):  # the shared start, then the row's own tokens (the padding between dropped)
            keep = torch.cat([torch.arange(start), torch.arange(start + width - n, start + width)])
            kv[batch[r]] = tuple((layer.keys[r, :, keep].clone(), layer.values[r, :, keep].clone())
                                 for layer in cache.layers)
    return FrozenPrefix({ex.id: i for i, ex in enumerate(examples)}, tuple(frozen), tuple(kv))


def _frozen_pass(
    model: ChatModel, items: list[_Item], examples: Sequence[Example], frozen: FrozenPrefix, batch_size: int,
    row_context: RowContext | None, want: set[int], grad: bool = False,
) -> tuple[dict[tuple[int, int], list[Any]], dict[int, torch.Tensor]]:
    """Every (example, choice) row as one short sequence on top of its example's frozen KV.

    With `grad` the pass runs with autograd on and the log-probabilities stay tensors (0-dim per read,
    on the model's device) so a loss can flow back into whatever `row_context` adds (a learned vector).
    """
    from transformers import DynamicCache

    # rows: (item, frozen row, input ids, reads [(choice, position in the row, token)], next-token position or -1);
    # choices whose only token follows the context share one row (the context's rest)
    rows: list[tuple[_Item, int, list[int], list[tuple[int, int, int]], int]] = []
    for it, ex in zip(items, examples, strict=True):
        f = frozen.index[ex.id]
        n = frozen.lengths[f]
        rest = next((s for s in it.suffixes if s.choice == -1), None)
        context_end = len(it.prefix) + (len(rest.ids) if rest is not None else 0)
        nxt = context_end - 1 - n if it.example in want else -1
        shared = [(s.choice, rel + len(it.prefix) - n, token) for s in it.suffixes if not s.ids for rel, token in s.reads]
        if rest is None and (shared or nxt >= 0):  # this row ends where the context ends: next token read here
            rows.append((it, f, it.prefix[n:], shared, nxt))
        elif shared:
            rows.append((it, f, it.prefix[n:], shared, -1))
        for s in it.suffixes:
            if s.ids:
                reads = [(s.choice, rel + len(it.prefix) - n, token) for rel, token in s.reads]
                rows.append((it, f, it.prefix[n:] + s.ids, reads, nxt if s.choice == -1 else -1))
    rows.sort(key=lambda r: (frozen.lengths[r[1]], len(r[2])))
    pad = int(model.tokenizer.pad_token_id or 0)
    device = model.device
    values: dict[tuple[int, int], list[Any]] = {}
    nexts: dict[int, torch.Tensor] = {}
    for b0 in range(0, len(rows), batch_size):
        batch = rows[b0 : b0 + batch_size]
        fwidth = max(frozen.lengths[r[1]] for r in batch)
        width = max(len(r[2]) for r in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), fwidth + width), dtype=torch.long)
        cache = DynamicCache()
        ref = next((frozen.kv[row[1]] for row in batch if frozen.lengths[row[1]] > 0), ())
        n_layers = len(ref)
        for layer in range(n_layers):
            heads, _, head_dim = ref[layer][0].shape
            keys = torch.zeros((len(batch), heads, fwidth, head_dim), dtype=ref[layer][0].dtype)
            vals = torch.zeros_like(keys)
            for r, row in enumerate(batch):
                n = frozen.lengths[row[1]]
                if n:
                    keys[r, :, fwidth - n :] = frozen.kv[row[1]][layer][0]
                    vals[r, :, fwidth - n :] = frozen.kv[row[1]][layer][1]
            cache.update(keys.to(device), vals.to(device), layer)
        for r, row in enumerate(batch):
            n = frozen.lengths[row[1]]
            mask[r, fwidth - n : fwidth] = 1
            ids[r, : len(row[2])] = torch.tensor(row[2], dtype=torch.long)
            mask[r, fwidth : fwidth + len(row[2])] = 1
        position = torch.tensor([frozen.lengths[row[1]] for row in batch])[:, None] + torch.arange(width)
        ctx = row_context([row[0].example for row in batch]) if row_context else nullcontext()
        picks = list(dict.fromkeys((r, pos) for r, row in enumerate(batch) for pos in
                                   [*(p for _, p, _ in row[3]), row[4]] if pos >= 0))
        if not picks:
            continue
        with torch.enable_grad() if grad else torch.inference_mode(), ctx:
            hidden = model.hf.base_model(input_ids=ids.to(device), attention_mask=mask.to(device),
                                         position_ids=position.to(device), past_key_values=cache if n_layers else None,
                                         use_cache=True).last_hidden_state  # [rows, width, d_model]
            at = hidden[torch.tensor([p[0] for p in picks]), torch.tensor([p[1] for p in picks])]  # [n_picks, d]
            logp = torch.log_softmax(model.unembed(at).float(), dim=-1)  # [n_picks, vocab]
            if not grad:
                logp = logp.cpu()
        got = {p: logp[i] for i, p in enumerate(picks)}
        for r, (it, _, _, reads, nxt) in enumerate(batch):
            for choice, pos, token in reads:
                lp = got[(r, pos)][token]
                values.setdefault((it.example, choice), []).append(lp if grad else float(lp))
            if nxt >= 0:
                nexts[it.example] = got[(r, nxt)]
    return values, nexts


def frozen_logprobs(
    model: ChatModel, examples: Sequence[Example], frozen: FrozenPrefix, batch_size: int = 16,
    row_context: RowContext | None = None, next_token_of: Collection[int] = (), grad: bool = False,
) -> tuple[dict[tuple[int, int], list[Any]], dict[int, torch.Tensor]]:
    """The frozen-prefix pass itself: every choice token's log-probability, and next-token log-probs.

    What `score_choices_cached(frozen=...)` sums into its table, kept per token; with `grad=True` the
    values are tensors a loss can backpropagate through (`steering.methods.learned` trains vectors on it).

    Args:
        model: the model.
        examples: records with `choices` (ids must be in `frozen`).
        frozen: unsteered KV of each example's first tokens (`frozen_prefix`; lengths 0 freeze nothing).
        batch_size: rows per forward pass.
        row_context: given the example index of each row, the context to run it in.
        next_token_of: example indices whose next-token log-probabilities to return.
        grad: keep autograd on and return tensors instead of floats.

    Returns:
        `{(example, choice): [log p of each choice token]}`, `{example: [vocab] log-probs}`.
    """
    return _frozen_pass(model, _items(model, examples), examples, frozen, batch_size, row_context,
                        set(next_token_of), grad)


def _suffix_pass(
    model: ChatModel, cache: object, batch: list[_Item], rows: list[tuple[int, _Suffix]], mask: torch.Tensor,
    position: torch.Tensor, pad: int, row_context: RowContext | None,
) -> dict[tuple[int, int], torch.Tensor]:
    """Run each suffix row on its example's cached prefix; return the log-probs at every position read."""
    device = model.device
    row_idx = torch.tensor([r for r, _ in rows])
    cache.batch_select_indices(row_idx.to(device))  # type: ignore[attr-defined]
    width = max(len(s.ids) for _, s in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask2 = torch.zeros_like(ids)
    for n, (_, s) in enumerate(rows):
        ids[n, : len(s.ids)] = torch.tensor(s.ids, dtype=torch.long)
        mask2[n, : len(s.ids)] = 1
    full_mask = torch.cat([mask[row_idx], mask2], dim=1)  # [rows, prefix width + width]
    position2 = position[row_idx, -1:] + 1 + torch.arange(width)  # [rows, width]
    wanted = [(n, rel) for n, (_, s) in enumerate(rows) for rel in
              ([r for r, _ in s.reads if r >= 0] if s.choice >= 0 else [len(s.ids) - 1])]
    ctx = row_context([batch[r].example for r, _ in rows]) if row_context else nullcontext()
    with torch.inference_mode(), ctx:
        hidden = model.hf.base_model(input_ids=ids.to(device), attention_mask=full_mask.to(device),
                                     position_ids=position2.to(device), past_key_values=cache,
                                     use_cache=True).last_hidden_state  # [rows, width, d_model]
        if not wanted:
            return {}
        at = hidden[torch.tensor([w[0] for w in wanted]), torch.tensor([w[1] for w in wanted])]  # [n_wanted, d]
        logp = torch.log_softmax(model.unembed(at).float(), dim=-1).cpu()  # [n_wanted, vocab]
    return {w: logp[i] for i, w in enumerate(wanted)}


def score_choices_cached(
    model: ChatModel,
    examples: Sequence[Example],
    batch_size: int = 16,
    row_context: RowContext | None = None,
    next_token_of: Collection[int] = (),
    frozen: FrozenPrefix | None = None,
    progress: bool = False,
) -> CachedScores:
    """Score every choice of every example, running each shared context once.

    Args:
        model: the ChatModel.
        examples: records with `choices`.
        batch_size: examples per context pass.
        row_context: given the example index of each row of a pass, the context to run it in.
        next_token_of: example indices whose next-token log-probabilities (after prompt + scoring
            prefix) to return.
        frozen: unsteered KV of each example's first tokens (by example id; see FrozenPrefix); only
            valid when `row_context` leaves those tokens unsteered (positions "generated").
        progress: show a tqdm bar over the examples (`workbench eval`, the probe job's behaviour scores).

    Returns:
        CachedScores: `table` (`interp.scoring.choices.choice_table`: `example`, `choice`, `logprob`,
        `n_tokens`, `mean_logprob`) and `next_logprobs`.
    """
    items = _items(model, examples)
    if frozen is not None:
        values, nexts_f = _frozen_pass(model, items, examples, frozen, batch_size, row_context, set(next_token_of))
        return CachedScores(choice_table(values), nexts_f)
    order = sorted(range(len(items)), key=lambda k: (len(items[k].prefix), k))
    pad = int(model.tokenizer.pad_token_id or 0)
    want = set(next_token_of)
    values_c: dict[tuple[int, int], list[float]] = {}
    nexts: dict[int, torch.Tensor] = {}
    device = model.device
    bar = tqdm(total=len(items), desc="score", unit="example", disable=not progress, dynamic_ncols=True)
    for b0 in range(0, len(order), batch_size):
        batch = [items[k] for k in order[b0 : b0 + batch_size]]
        bar.update(len(batch))
        width = max(len(it.prefix) for it in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, it in enumerate(batch):
            ids[r, width - len(it.prefix) :] = torch.tensor(it.prefix)
            mask[r, width - len(it.prefix) :] = 1
        position = (mask.cumsum(-1) - 1).clamp(min=0)
        ctx = row_context([it.example for it in batch]) if row_context else nullcontext()
        with torch.inference_mode(), ctx:
            out = model.hf.base_model(input_ids=ids.to(device), attention_mask=mask.to(device),
                                      position_ids=position.to(device), use_cache=True)
            last = torch.log_softmax(model.unembed(out.last_hidden_state[:, -1]).float(), dim=-1).cpu()  # [b, vocab]
        # second pass: the suffix rows (choices with tokens left, and context rests) on copies of the cache
        rows = [(r, s) for r, it in enumerate(batch) for s in it.suffixes if s.ids]
        picked: dict[tuple[int, int], torch.Tensor] = {}  # (suffix row, relative position) -> log-probs [vocab]
        if rows:
            picked = _suffix_pass(model, out.past_key_values, batch, rows, mask, position, pad, row_context)
        row_of = {(r, s.choice): n for n, (r, s) in enumerate(rows)}
        for r, it in enumerate(batch):
            for s in it.suffixes:
                for rel, token in s.reads:
                    logp = last[r] if rel < 0 else picked[(row_of[(r, s.choice)], rel)]
                    values_c.setdefault((it.example, s.choice), []).append(float(logp[token]))
            if it.example in want:
                rest = next((s for s in it.suffixes if s.choice == -1), None)
                nexts[it.example] = last[r] if rest is None else picked[(row_of[(r, -1)], len(rest.ids) - 1)]
    bar.close()
    return CachedScores(choice_table(values_c), nexts)
