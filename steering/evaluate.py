"""Score a steered model on a test set: K strengths in one batched pass, then the cell's metrics.

`score_strengths` replicates the test examples K times and runs ONE scoring
call whose `row_context` installs `steer()` with a per-row strength tensor
(rows of replica k get strength k), so K strengths cost one batched pass.
Scorers (SCORERS): `full` is `interp.scoring.reference.score_choices` (one sequence per
choice) plus a small pass for the next-token distribution at the answer
position (after the prompt and the scoring prefix, read on the baseline
prompts for the KL term); `cached` (the default) is
`interp.scoring.frozen.score_choices_cached`, which runs each context once and
gives the same numbers about twice as fast; given a `freeze(model, test)`
(the unsteered KV of every prompt but its last token, computed once), it runs
only the last prompt token, the scoring prefix and the choice for the
unsteered model and for positions "generated" (several times faster again). "generated" positions start at
the last prompt token (see `steering.spec`).

Metrics (alignment gain, helpfulness loss, their CIs) are in `steering.sweep.metrics`.

Example:
    >>> test = build_test_set(TestSetConfig(), PairSplit(0, 0.3))  # doctest: +SKIP
    >>> base = score_strengths(model, test, None, [0.0])[0]  # doctest: +SKIP
    >>> cells = score_strengths(model, test, SteerSpec(v, (10,), "generated"), [-4.0, 4.0])  # doctest: +SKIP
    >>> cell_metrics(base, cells[0], test)["answer_shift_gain"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from interp.models.loading import ChatModel
from interp.scoring.frozen import FrozenPrefix, frozen_prefix, score_choices_cached
from interp.scoring.profile import per_example
from interp.scoring.reference import RowContext, score_choices, scoring_prefix
from interp.tasks.example import Example
from steering.spec import SteerSpec, steer_lengths
from steering.testset import TestSet


@dataclass(frozen=True, eq=False)
class CellScores:
    """What one strength produced on the test set.

    Args:
        strength: the multiplier of the raw vector (0 for the unsteered model).
        rows: `interp.scoring.profile.per_example` rows, in test-set order.
        next_logprobs: [len(test.next_index), vocab] log-softmax of the next token after each KL prompt
            (the baseline prompts, then the user-right prompts: `TestSet.next_index`).
    """

    strength: float
    rows: pd.DataFrame
    next_logprobs: torch.Tensor


def prompt_tokens(model: ChatModel, examples: Sequence[Example]) -> list[int]:
    """Tokens of each example's rendered prompt (with the assistant header), as the scorer tokenizes it.

    Example:
        >>> prompt_tokens(model, examples[:2])  # doctest: +SKIP
        [61, 63]
    """
    tok = model.tokenizer
    return [len(tok(model.render(ex.turns), add_special_tokens=False)["input_ids"]) for ex in examples]


def replica_context(
    model: ChatModel, spec: SteerSpec | None, strengths: Sequence[float], n: int, tokens: Sequence[int],
    row_scale: Sequence[float] | np.ndarray | None = None,
) -> RowContext | None:
    """Row context for `K * n` replicated rows: row `i` gets `strengths[i // n] * row_scale[i % n]`, prompt `tokens[i % n]`.

    Args:
        model: the model.
        spec: the intervention (None: no steering, returns None).
        strengths: one per replica.
        n: examples per replica.
        tokens: prompt tokens of each of the n examples.
        row_scale: a multiplier per example (e.g. a gate's 0/1 decisions; None: all 1).
    """
    if spec is None:
        return None
    scale = [1.0] * n if row_scale is None else [float(c) for c in row_scale]

    def context(rows: list[int]) -> AbstractContextManager[object]:
        return spec.context(model, [float(strengths[i // n]) * scale[i % n] for i in rows],
                            [tokens[i % n] for i in rows])

    return context


def next_token_logprobs(
    model: ChatModel, examples: Sequence[Example], batch_size: int = 16, row_context: RowContext | None = None
) -> torch.Tensor:
    """Log-probabilities of the next token after prompt + scoring prefix, `[n, vocab]` float32.

    Rows are right-padded and length-sorted as in `interp.scoring.reference`; `row_context`
    receives the example indices of each batch's rows.

    Example:
        >>> next_token_logprobs(model, examples[:3]).shape  # doctest: +SKIP
        torch.Size([3, 49152])
    """
    tok = model.tokenizer
    seqs = [tok(model.render(ex.turns) + scoring_prefix(ex), add_special_tokens=False)["input_ids"] for ex in examples]
    for ex, seq in zip(examples, seqs, strict=True):
        model.check_fits(len(seq), f"example {ex.id!r}")
    order = sorted(range(len(seqs)), key=lambda k: len(seqs[k]))
    pad = int(tok.pad_token_id or 0)
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


Scorer = Callable[[ChatModel, list[Example], int, RowContext | None, list[int], FrozenPrefix | None],
                  tuple[pd.DataFrame, torch.Tensor]]


def _full(model: ChatModel, examples: list[Example], batch_size: int, context: RowContext | None,
          next_of: list[int], frozen: FrozenPrefix | None) -> tuple[pd.DataFrame, torch.Tensor]:
    """`interp.scoring.reference.score_choices` (one sequence per choice) plus a next-token pass over `next_of`."""
    table = score_choices(model, examples, batch_size=batch_size, row_context=context)
    sub = None if context is None else (lambda rows: context([next_of[r] for r in rows]))
    return table, next_token_logprobs(model, [examples[i] for i in next_of], batch_size, sub)


def _cached(model: ChatModel, examples: list[Example], batch_size: int, context: RowContext | None,
            next_of: list[int], frozen: FrozenPrefix | None) -> tuple[pd.DataFrame, torch.Tensor]:
    """`interp.scoring.frozen.score_choices_cached`: each context once (or only its unfrozen rest), next tokens free."""
    out = score_choices_cached(model, examples, batch_size, context, next_token_of=next_of, frozen=frozen)
    return out.table, torch.stack([out.next_logprobs[i] for i in next_of])


#: "cached" (default, about one prompt per example) or "full" (interp.scoring.reference, one sequence per choice); equal
#: log-probabilities up to float error (tests/steering/test_evaluate.py).
SCORERS: dict[str, Scorer] = {"cached": _cached, "full": _full}


def freeze(model: ChatModel, test: TestSet, tokens: Sequence[int] | None = None, batch_size: int = 16) -> FrozenPrefix:
    """The unsteered KV of every test prompt up to (not including) its last prompt token.

    Valid for the unsteered model and for positions "generated" (steering starts at the last
    prompt token, see steering.spec), whatever the vector, layer, mode or strength.

    Example:
        >>> frozen = freeze(model, test)  # doctest: +SKIP
        >>> cells = score_strengths(model, test, spec, [-4.0, 4.0], frozen=frozen)  # doctest: +SKIP
    """
    tokens = list(tokens) if tokens is not None else prompt_tokens(model, test.examples)
    return frozen_prefix(model, test.examples, steer_lengths(tokens), batch_size)


def score_strengths(
    model: ChatModel,
    test: TestSet,
    spec: SteerSpec | None,
    strengths: Sequence[float],
    batch_size: int = 16,
    tokens: Sequence[int] | None = None,
    scorer: str = "cached",
    frozen: FrozenPrefix | None = None,
    row_scale: Sequence[float] | np.ndarray | None = None,
) -> list[CellScores]:
    """Score the test set under each strength, all strengths in one batched pass.

    Args:
        model: the model.
        test: the test set.
        spec: the intervention; None scores the unsteered model (strengths must be [0.0]).
        strengths: K strengths (multipliers of the raw vector).
        batch_size: sequences (or contexts) per forward pass; the K replicas share batches.
        tokens: prompt tokens of each test example (computed when None).
        scorer: a key of SCORERS.
        frozen: `freeze(model, test)`: with the cached scorer, used for the unsteered model and for
            positions "generated" (ignored otherwise).
        row_scale: per test example, a multiplier of every strength: a gate's 0/1 decisions make a
            gated cell (`steering.gate_training`); None steers every example.

    Returns:
        One CellScores per strength, in order.
    """
    if not strengths:
        raise ValueError("no strengths to score")
    if spec is None and any(s != 0.0 for s in strengths):
        raise ValueError("an unsteered evaluation takes strength 0 only")
    if scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}: choose from {', '.join(SCORERS)}")
    examples = list(test.examples)
    n, k = len(examples), len(strengths)
    tokens = list(tokens) if tokens is not None else prompt_tokens(model, examples)
    if row_scale is not None and len(row_scale) != n:
        raise ValueError(f"row_scale has {len(row_scale)} values for {n} test examples")
    context = replica_context(model, spec, strengths, n, tokens, row_scale)
    next_of = [r * n + i for r in range(k) for i in test.next_index]
    usable = frozen if spec is None or spec.positions == "generated" else None
    scores, logprobs = SCORERS[scorer](model, examples * k, batch_size, context, next_of, usable)  # [k * n_kl, vocab]
    n_kl = len(test.next_index)
    out = []
    for r, strength in enumerate(strengths):
        part = scores[(scores.example >= r * n) & (scores.example < (r + 1) * n)].copy()
        part["example"] -= r * n
        rows = per_example(examples, part)
        out.append(CellScores(float(strength), rows, logprobs[r * n_kl : (r + 1) * n_kl]))
    return out
