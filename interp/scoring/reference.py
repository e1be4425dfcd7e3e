"""The plain scorer: one full sequence per choice. The REFERENCE the tests compare the scorer with.

Production scores through `interp.scoring.frozen` (each context once, equal
log-probabilities up to float error); this module is kept, plain and slow, so
the tests (and the sweep benchmark's naive baseline) have an independent
computation to compare it with. Nothing outside `tests/` and `bench/` imports it.

Each (example, choice) becomes one sequence: the rendered prompt, the
scoring prefix, then the choice, tokenised as `interp.scoring.choices` says
(content scoring: answer texts; letter scoring: letters of options listed in
the prompt; CAA's "(A" answers are scored in place of their letter). The
choice's tokens are scored under the model: their summed log-probability and
the length-normalised mean. `next_token_logprobs` is the plain pass for the
next-token distribution after the context (the sweep's KL term).

Example:
    >>> table = score_choices(model, examples)  # doctest: +SKIP
    >>> table.columns[:4].tolist()  # doctest: +SKIP
    ['example', 'choice', 'logprob', 'n_tokens']
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import torch

from interp.scoring.choices import RowContext, choice_span, choice_table, scoring_context
from interp.tasks.example import Example

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


@dataclass(frozen=True)
class _Sequence:
    """One forward-pass row and the log-probabilities to read from it."""

    example: int
    ids: list[int]
    reads: list[tuple[int, int, int]]  # (position predicting the token, token id, choice index)


def _sequences(model: ChatModel, examples: list[Example]) -> list[_Sequence]:
    """One row per multi-token choice; single-token choices share one row per example."""
    seqs = []
    for i, ex in enumerate(examples):
        text, context = scoring_context(model, ex)
        shared: list[tuple[int, int, int]] = []
        for j, choice in enumerate(ex.choices):
            full, start = choice_span(model, ex, text, context, choice)
            if start == len(context) and len(full) == start + 1:
                shared.append((start - 1, full[start], j))
            else:
                seqs.append(_Sequence(i, full, [(t - 1, full[t], j) for t in range(start, len(full))]))
        if shared:
            seqs.append(_Sequence(i, context, shared))
    return seqs


def score_choices(
    model: ChatModel,
    examples: list[Example],
    batch_size: int = 16,
    row_context: RowContext | None = None,
) -> pd.DataFrame:
    """Score every choice of every example.

    Args:
        model: the ChatModel.
        examples: records with `choices`.
        batch_size: sequences per forward pass.
        row_context: optional; given the example indices of a batch's rows,
            returns a context manager the batch runs in (e.g. steering with a
            per-row strength).

    Returns:
        One row per (example, choice): `example` (index), `choice` (index),
        `logprob` (sum over the choice's tokens), `n_tokens`, `mean_logprob`.
    """
    seqs = _sequences(model, examples)
    order = sorted(range(len(seqs)), key=lambda k: len(seqs[k].ids))
    pad = int(model.tokenizer.pad_token_id or 0)
    values: dict[tuple[int, int], list[float]] = {}
    for b0 in range(0, len(order), batch_size):
        batch = [seqs[k] for k in order[b0 : b0 + batch_size]]
        width = max(len(sq.ids) for sq in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, sq in enumerate(batch):
            ids[r, : len(sq.ids)] = torch.tensor(sq.ids)
            mask[r, : len(sq.ids)] = 1
        reads = [(r, t, token, sq.example, j) for r, sq in enumerate(batch) for t, token, j in sq.reads]
        rows_b = torch.tensor([x[0] for x in reads])
        rows_t = torch.tensor([x[1] for x in reads])
        targets = torch.tensor([x[2] for x in reads])
        ctx = row_context([sq.example for sq in batch]) if row_context else nullcontext()
        # run the decoder, then unembed only the positions that predict a choice token
        with torch.inference_mode(), ctx:
            hidden = model.hf.base_model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                         use_cache=False).last_hidden_state  # [batch, pos, d_model]
            logits = model.unembed(hidden[rows_b, rows_t]).float()  # [n_reads, vocab]
        token_logp = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None].to(logits.device))[:, 0].tolist()
        for (_, _, _, example, j), value in zip(reads, token_logp, strict=True):
            values.setdefault((example, j), []).append(value)
    return choice_table(values)


def next_token_logprobs(
    model: ChatModel, examples: Sequence[Example], batch_size: int = 16, row_context: RowContext | None = None
) -> torch.Tensor:
    """Log-probabilities of the next token after prompt + scoring prefix, `[n, vocab]` float32.

    Rows are right-padded and length-sorted as in `score_choices`; `row_context`
    receives the example indices of each batch's rows.

    Example:
        >>> next_token_logprobs(model, examples[:3]).shape  # doctest: +SKIP
        torch.Size([3, 49152])
    """
    seqs = [scoring_context(model, ex)[1] for ex in examples]
    order = sorted(range(len(seqs)), key=lambda k: len(seqs[k]))
    pad = int(model.tokenizer.pad_token_id or 0)
    out: list[torch.Tensor | None] = [None] * len(seqs)
    for b0 in range(0, len(order), batch_size):
        batch = order[b0 : b0 + batch_size]
        width = max(len(seqs[k]) for k in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, k in enumerate(batch):
            ids[r, : len(seqs[k])] = torch.tensor(seqs[k])
            mask[r, : len(seqs[k])] = 1
        last = mask.sum(1) - 1  # [batch]
        ctx = row_context(batch) if row_context else nullcontext()
        with torch.inference_mode(), ctx:
            hidden = model.hf.base_model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                         use_cache=False).last_hidden_state  # [batch, pos, d_model]
            logits = model.unembed(hidden[torch.arange(len(batch)), last.to(model.device)]).float()  # [batch, vocab]
        for r, k in enumerate(batch):
            out[k] = torch.log_softmax(logits[r], dim=-1).cpu()
    return torch.stack([t for t in out if t is not None]) if out else torch.zeros((0, 0))
