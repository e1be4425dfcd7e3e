"""Score a test set through llama.cpp: the sweep's cell metrics for a vector as the llama.cpp engine applies it.

The same choices, tokens and tables as the workbench's scorer (`interp.scoring.choices`, `per_example`),
so `steering.sweep.metrics.cell_metrics` reads the result as it reads a hook-steered cell: the lead's
check that the recommended `generated` vector, run through llama.cpp, keeps the user-wrong accuracy the
sweep measured with hooks. Each example's context (rendered prompt + scoring prefix) is decoded once with
the vector where `positions` steers (`steered.score`); each choice longer than one token is decoded after
the context tokens it shares, which stay in the KV cache.

Example:
    >>> base = score_test_set(model, ctx, test, None, "generated")  # doctest: +SKIP
    >>> cell = score_test_set(model, ctx, test, ControlVector.of(v, -4.0, 30), "generated", strength=-4.0)  # doctest: +SKIP
    >>> cell_metrics(base, cell, test)["user_wrong_accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import log_softmax

from interp.models.loading import ChatModel
from interp.scoring.choices import choice_span, choice_table, scoring_context
from interp.scoring.profile import per_example
from interp.tasks.example import Example
from steering.evaluation.evaluate import CellScores, prompt_tokens
from steering.evaluation.testset import TestSet
from steering.llamacpp.runtime import ControlVector, LlamaContext
from steering.llamacpp.steered import score


def _common(a: list[int], b: list[int]) -> int:
    """Length of the common prefix of two token lists."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def choice_logprobs(model: ChatModel, ctx: LlamaContext, examples: list[Example], cvec: ControlVector | None,
                    positions: str) -> tuple[dict[tuple[int, int], list[float]], list[np.ndarray]]:
    """Per (example, choice) the log-probabilities of the choice's tokens, and per example the next-token
    log-probabilities after its context, through llama.cpp with `cvec` at `positions`.

    Example:
        >>> values, after = choice_logprobs(model, ctx, examples, None, "generated")  # doctest: +SKIP
    """
    n_prompt = prompt_tokens(model, examples)
    values: dict[tuple[int, int], list[float]] = {}
    after = []
    for i, ex in enumerate(examples):
        text, context = scoring_context(model, ex)
        full = {j: choice_span(model, ex, text, context, choice) for j, choice in enumerate(ex.choices)}
        longer = {j: ids for j, (ids, start) in full.items() if not (start == len(context) and len(ids) == start + 1)}
        # the context tokens before every longer choice's first scored token stay in the KV cache (the token
        # before it is decoded again, its logits are read); each choice decodes the rest
        shared = min([min(_common(ids, context), full[j][1]) - 1 for j, ids in longer.items()] + [len(context)])
        context_lp = log_softmax(score(ctx, context, cvec, positions, n_prompt[i])[-1].astype(np.float64))
        after.append(context_lp)
        if longer:
            score(ctx, context[:shared], cvec, positions, n_prompt[i], keep=True)
        for j, (ids, start) in full.items():
            if j not in longer:
                values[(i, j)] = [float(context_lp[ids[start]])]
                continue
            logits = score(ctx, ids, cvec, positions, n_prompt[i], first=shared)
            values[(i, j)] = [float(log_softmax(logits[t - 1 - shared].astype(np.float64))[ids[t]]) for t in range(start, len(ids))]
        ctx.truncate(0, 0)
    return values, after


def score_test_set(model: ChatModel, ctx: LlamaContext, test: TestSet, cvec: ControlVector | None, positions: str,
                   strength: float = 0.0) -> CellScores:
    """The test set scored by llama.cpp with `cvec` at `positions` (None: unsteered), as one cell.

    Args:
        model: the HF model of the same GGUF (tokenizer, chat template).
        ctx: a llama.cpp context on that GGUF.
        test: the held-out test set.
        cvec: the control vector (strength folded in).
        positions: "all", "prompt" or "generated".
        strength: recorded in the cell (the multiplier `cvec` was built with).
    """
    examples = list(test.examples)
    values, after = choice_logprobs(model, ctx, examples, cvec, positions)
    rows = per_example(examples, choice_table(values))
    vocab = int(model.hf.config.vocab_size)
    next_logprobs = torch.tensor(np.stack([after[i][:vocab] for i in test.next_index]), dtype=torch.float32)
    return CellScores(float(strength), rows, next_logprobs)
