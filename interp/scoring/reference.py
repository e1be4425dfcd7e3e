"""Log-probability scoring of answer choices, batched.

Each (example, choice) becomes one sequence: the rendered prompt, the
scoring prefix, then the choice. The choice's tokens are scored under the
model: their summed log-probability and the length-normalised mean.

- Content scoring (default): choices are answer texts ("Paris").
- Letter scoring: choices are letters ("A", "B") of options listed in the
  prompt; an `answer` that already ends with a choice (CAA's "(A") is a
  contrast completion, so the choices are scored in its place ("(" + "A").

Example:
    >>> table = score_choices(model, examples)  # doctest: +SKIP
    >>> table.columns[:4].tolist()  # doctest: +SKIP
    ['example', 'choice', 'logprob', 'n_tokens']
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from interp.tasks.example import Example

if TYPE_CHECKING:
    from interp.models.loading import ChatModel

# called with the example index of every row of a batch; returns a context to run that batch in
RowContext = Callable[[list[int]], AbstractContextManager[object]]


def scoring_prefix(example: Example) -> str:
    """Text between the rendered prompt and a choice.

    Example:
        >>> from interp.tasks.example import Turn
        >>> ex = Example("a", "p", "caa", "honest", (Turn("user", "q"),), ("A", "B"), answer="(B")
        >>> scoring_prefix(ex)
        '('
    """
    answer = example.answer or ""
    for choice in example.choices:
        if choice and answer.endswith(choice):
            return answer[: -len(choice)]
    return answer


@dataclass(frozen=True)
class _Sequence:
    """One forward-pass row and the log-probabilities to read from it."""

    example: int
    ids: list[int]
    reads: list[tuple[int, int, int]]  # (position predicting the token, token id, choice index)


def _sequences(model: ChatModel, examples: list[Example]) -> list[_Sequence]:
    """One row per multi-token choice; single-token choices share one row per example."""
    seqs = []
    tok = model.tokenizer
    for i, ex in enumerate(examples):
        if not ex.choices:
            raise ValueError(f"example {ex.id!r}: no choices to score")
        text = model.render(ex.turns) + scoring_prefix(ex)
        context = tok(text, add_special_tokens=False)["input_ids"]
        model.check_fits(len(context), f"example {ex.id!r}")
        shared: list[tuple[int, int, int]] = []
        for j, choice in enumerate(ex.choices):
            # tokenize context+choice together: a choice's first token may merge with the prefix's space
            full = tok(text + choice, add_special_tokens=False)["input_ids"]
            start = len(context)
            while start > 0 and full[:start] != context[:start]:
                start -= 1
            if start >= len(full) or start == 0:
                raise ValueError(f"example {ex.id!r}: choice {choice!r} adds no scorable tokens")
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
    progress: bool = False,
) -> pd.DataFrame:
    """Score every choice of every example.

    Args:
        model: the ChatModel.
        examples: records with `choices`.
        batch_size: sequences per forward pass.
        row_context: optional; given the example indices of a batch's rows,
            returns a context manager the batch runs in (e.g. steering with a
            per-row strength).
        progress: show a tqdm bar (sequences and tokens/s).

    Returns:
        One row per (example, choice): `example` (index), `choice` (index),
        `logprob` (sum over the choice's tokens), `n_tokens`, `mean_logprob`.
    """
    seqs = _sequences(model, examples)
    order = sorted(range(len(seqs)), key=lambda k: len(seqs[k].ids))
    pad = int(model.tokenizer.pad_token_id or 0)
    totals: dict[tuple[int, int], float] = {}
    counts: dict[tuple[int, int], int] = {}
    bar = tqdm(total=len(seqs), desc="score", unit="seq", disable=not progress, dynamic_ncols=True)
    for b0 in range(0, len(order), batch_size):
        batch = [seqs[k] for k in order[b0 : b0 + batch_size]]
        bar.update(len(batch))
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
            totals[(example, j)] = totals.get((example, j), 0.0) + value
            counts[(example, j)] = counts.get((example, j), 0) + 1
    bar.close()
    keys = sorted(totals)
    logprob = np.array([totals[k] for k in keys])
    n_tokens = np.array([counts[k] for k in keys])
    return pd.DataFrame({
        "example": [k[0] for k in keys],
        "choice": [k[1] for k in keys],
        "logprob": logprob,
        "n_tokens": n_tokens,
        "mean_logprob": logprob / n_tokens,
    })


def choice_matrix(table: pd.DataFrame, column: str = "mean_logprob") -> list[np.ndarray]:
    """Per example, the array of `column` over its choices (in choice order)."""
    table = table.sort_values(["example", "choice"])
    return [g[column].to_numpy() for _, g in table.groupby("example", sort=True)]
