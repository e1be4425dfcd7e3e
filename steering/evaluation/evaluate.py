"""Score a steered model on a test set: K strengths in one batched pass, then the cell's metrics.

`score_strengths` replicates the test examples K times and runs ONE scoring
call whose `row_context` installs `steer()` with a per-row strength tensor
(rows of replica k get strength k), so K strengths cost one batched pass.
The scorer is `interp.scoring.frozen.score_choices_cached`: each context runs
once and the next-token distribution at the answer position (after the prompt
and the scoring prefix, read on the baseline prompts for the KL term) comes
free; given a `freeze(model, test)` (the unsteered KV of every prompt but its
last token, computed once), it runs only the last prompt token, the scoring
prefix and the choice for the unsteered model and for positions "generated"
(several times faster again). "generated" positions start at the last prompt
token (see `steering.apply.spec`). The tests compare it with the plain
`interp.scoring.reference` through the same `replica_context` and `split_cells`.

Metrics (alignment gain, helpfulness loss, their CIs) are in `steering.sweep.metrics`.

Example:
    >>> test = build_test_set(TestSetConfig(), PairSplit(0, 0.3))  # doctest: +SKIP
    >>> base = score_strengths(model, test, None, [0.0])[0]  # doctest: +SKIP
    >>> cells = score_strengths(model, test, SteerSpec(v, (10,), "generated"), [-4.0, 4.0])  # doctest: +SKIP
    >>> cell_metrics(base, cells[0], test)["answer_shift_gain"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from interp.models.loading import ChatModel
from interp.scoring.choices import RowContext
from interp.scoring.frozen import FrozenPrefix, frozen_prefix, score_choices_cached
from interp.scoring.profile import per_example
from interp.tasks.example import Example
from steering.apply.spec import RowSteering, steer_lengths
from steering.evaluation.testset import TestSet


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
    model: ChatModel, spec: RowSteering | None, strengths: Sequence[float], n: int, tokens: Sequence[int],
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


def split_cells(test: TestSet, strengths: Sequence[float], scores: pd.DataFrame,
                next_logprobs: torch.Tensor) -> list[CellScores]:
    """One CellScores per strength from a scores table over `K * n` replicated rows.

    Args:
        test: the test set (n examples).
        strengths: the K strengths, in replica order.
        scores: the scores table (`interp.scoring.choices.choice_table`) of `test.examples * K`.
        next_logprobs: `[K * len(test.next_index), vocab]`: replica k's next-token rows, in `test.next_index` order.
    """
    examples = list(test.examples)
    n, n_kl = len(examples), len(test.next_index)
    out = []
    for r, strength in enumerate(strengths):
        part = scores[(scores.example >= r * n) & (scores.example < (r + 1) * n)].copy()
        part["example"] -= r * n
        rows = per_example(examples, part)
        out.append(CellScores(float(strength), rows, next_logprobs[r * n_kl : (r + 1) * n_kl]))
    return out


def freeze(model: ChatModel, test: TestSet, tokens: Sequence[int] | None = None, batch_size: int = 16) -> FrozenPrefix:
    """The unsteered KV of every test prompt up to (not including) its last prompt token.

    Valid for the unsteered model and for positions "generated" (steering starts at the last
    prompt token, see steering.apply.spec), whatever the vector, layer, mode or strength.

    Example:
        >>> frozen = freeze(model, test)  # doctest: +SKIP
        >>> cells = score_strengths(model, test, spec, [-4.0, 4.0], frozen=frozen)  # doctest: +SKIP
    """
    tokens = list(tokens) if tokens is not None else prompt_tokens(model, test.examples)
    return frozen_prefix(model, test.examples, steer_lengths(tokens), batch_size)


def score_strengths(
    model: ChatModel,
    test: TestSet,
    spec: RowSteering | None,
    strengths: Sequence[float],
    batch_size: int = 16,
    tokens: Sequence[int] | None = None,
    frozen: FrozenPrefix | None = None,
    row_scale: Sequence[float] | np.ndarray | None = None,
    unsteered: CellScores | None = None,
) -> list[CellScores]:
    """Score the test set under each strength, all strengths in one batched pass.

    Args:
        model: the model.
        test: the test set.
        spec: the intervention; None scores the unsteered model (strengths must be [0.0]).
        strengths: K strengths (multipliers of the raw vector).
        batch_size: sequences (or contexts) per forward pass; the K replicas share batches.
        tokens: prompt tokens of each test example (computed when None).
        frozen: `freeze(model, test)`: used for the unsteered model and for positions "generated"
            (ignored otherwise).
        row_scale: per test example, a multiplier of every strength: a gate's 0/1 decisions make a
            gated cell (`steering.methods.gates`); None steers every example.
        unsteered: this test set's unsteered scores (`spec=None`, strength 0): the examples whose `row_scale` is 0
            are unsteered at every strength, so they are copied from it and not run (a gated cell runs only the
            rows its gate opens); None runs every row.

    Returns:
        One CellScores per strength, in order.
    """
    if not strengths:
        raise ValueError("no strengths to score")
    if spec is None and any(s != 0.0 for s in strengths):
        raise ValueError("an unsteered evaluation takes strength 0 only")
    examples = list(test.examples)
    n, k = len(examples), len(strengths)
    tokens = list(tokens) if tokens is not None else prompt_tokens(model, examples)
    if row_scale is not None and len(row_scale) != n:
        raise ValueError(f"row_scale has {len(row_scale)} values for {n} test examples")
    usable = frozen if spec is None or spec.positions == "generated" else None
    if unsteered is not None and row_scale is not None and len(unsteered.rows) != n:
        raise ValueError(f"the unsteered scores have {len(unsteered.rows)} rows for {n} test examples")
    if unsteered is not None and row_scale is not None and not all(float(c) != 0.0 for c in row_scale):
        return _open_rows_only(model, test, spec, strengths, batch_size, tokens, usable, row_scale, unsteered)
    context = replica_context(model, spec, strengths, n, tokens, row_scale)
    next_of = [r * n + i for r in range(k) for i in test.next_index]
    out = score_choices_cached(model, examples * k, batch_size, context, next_token_of=next_of, frozen=usable)
    return split_cells(test, strengths, out.table, torch.stack([out.next_logprobs[i] for i in next_of]))


def _open_rows_only(
    model: ChatModel, test: TestSet, spec: RowSteering | None, strengths: Sequence[float], batch_size: int,
    tokens: Sequence[int], frozen: FrozenPrefix | None, row_scale: Sequence[float] | np.ndarray,
    unsteered: CellScores,
) -> list[CellScores]:
    """`score_strengths` running only the rows with a nonzero scale; the others are `unsteered`'s rows."""
    examples = list(test.examples)
    on = [i for i, c in enumerate(row_scale) if float(c) != 0.0]
    where = {i: j for j, i in enumerate(on)}
    m, k = len(on), len(strengths)
    reads = [(j, where[i]) for j, i in enumerate(test.next_index) if i in where]  # (next row, open example)
    out = None
    if on:
        context = replica_context(model, spec, strengths, m, [tokens[i] for i in on], [row_scale[i] for i in on])
        next_of = [r * m + e for r in range(k) for _, e in reads]
        out = score_choices_cached(model, [examples[i] for i in on] * k, batch_size, context, next_token_of=next_of,
                                   frozen=frozen)
    cells = []
    for r, strength in enumerate(strengths):
        rows, next_logprobs = unsteered.rows.reset_index(drop=True), unsteered.next_logprobs.clone()
        if out is not None:
            part = out.table[(out.table.example >= r * m) & (out.table.example < (r + 1) * m)].copy()
            part["example"] -= r * m
            opened = per_example([examples[i] for i in on], part)[rows.columns].set_axis(on)
            rows = pd.concat([rows.drop(index=on), opened]).sort_index()
            for j, e in reads:
                next_logprobs[j] = out.next_logprobs[r * m + e]
        cells.append(CellScores(float(strength), rows, next_logprobs))
    return cells
