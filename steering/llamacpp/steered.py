"""Positions on llama.cpp: the control vector set for the tokens a positions rule steers, cleared for the rest.

The rules and their boundary are the workbench's (`steering.apply.spec`): with P
prompt tokens, "generated" steers token P - 1 (the last prompt token, which
predicts the first answer token) and every token after it; "prompt" steers
tokens 0 .. P - 2; "all" steers every token. llama.cpp adds the vector to
every token of a `llama_decode` call, so a sequence is decoded in spans: for
"generated", prompt[:-1] with no vector, then the last prompt token and each
generated token with it. The vector is per context, so other sequences are
decoded with their own vector in their own calls (`steering.serve`).

Example:
    >>> span = steered_span("generated", prompt_tokens=12)
    >>> span, spans(14, span)
    ((11, None), [(0, 11, False), (11, 14, True)])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from steering.apply.spec import GENERATED_OFFSET
from steering.llamacpp.runtime import ControlVector, LlamaContext, Row

POSITIONS = ("all", "prompt", "generated")


def steered_span(positions: str, prompt_tokens: int) -> tuple[int, int | None]:
    """The token indices `[start, end)` a positions rule steers (end None: to the end of the sequence).

    Raises:
        ValueError: an unknown rule.

    Example:
        >>> steered_span("prompt", 12), steered_span("all", 12)
        ((0, 11), (0, None))
    """
    boundary = max(prompt_tokens - GENERATED_OFFSET, 0)
    if positions == "all":
        return 0, None
    if positions == "generated":
        return boundary, None
    if positions == "prompt":
        return 0, boundary
    raise ValueError(f"unknown positions {positions!r}: llama.cpp steers {', '.join(POSITIONS)}")


def is_steered(span: tuple[int, int | None], index: int) -> bool:
    """Whether token `index` lies in `span`."""
    start, end = span
    return start <= index and (end is None or index < end)


def spans(n_tokens: int, span: tuple[int, int | None], first: int = 0) -> list[tuple[int, int, bool]]:
    """Tokens `first .. n_tokens - 1` cut where steering switches: `(start, end, steered)` runs.

    Example:
        >>> spans(10, (0, 4), first=2)
        [(2, 4, True), (4, 10, False)]
    """
    out: list[tuple[int, int, bool]] = []
    for i in range(first, n_tokens):
        on = is_steered(span, i)
        if out and out[-1][2] == on:
            out[-1] = (out[-1][0], i + 1, on)
        else:
            out.append((i, i + 1, on))
    return out


def score(ctx: LlamaContext, ids: Sequence[int], cvec: ControlVector | None, positions: str, prompt_tokens: int,
          seq: int = 0, first: int = 0, keep: bool = False) -> np.ndarray:
    """Logits `[len(ids) - first, vocab]` of one sequence from token `first` on, steered by `cvec` where
    `positions` says.

    Args:
        ctx: the context.
        ids: token ids (prompt, then any answer tokens).
        cvec: the control vector (None: unsteered everywhere).
        positions: "all", "prompt" or "generated".
        prompt_tokens: P, the rendered prompt's length (the rules' boundary).
        seq: the sequence id to use.
        first: tokens `ids[:first]` are already in sequence `seq` (decoded by an earlier call with `keep`):
            only the rest is decoded. 0: the sequence starts afresh.
        keep: leave the tokens in the sequence (a later call continues from them); else it is cut back
            to `first` tokens.
    """
    ctx.truncate(seq, first)
    span = steered_span(positions, prompt_tokens)
    pieces = [ctx.decode([Row(tuple(ids[a:b]), seq, a, all_logits=True)], cvec if on else None)[0]
              for a, b, on in spans(len(ids), span, first)]
    if not keep:
        ctx.truncate(seq, first)
    return np.concatenate(pieces)


def generate(ctx: LlamaContext, prompt: Sequence[int], cvec: ControlVector | None, positions: str, max_tokens: int,
             stop: frozenset[int], seq: int = 0) -> list[int]:
    """Greedy tokens after `prompt` (a stop token ends it and is not returned), steered where `positions` says.

    For "generated": prompt[:-1] unsteered, then the last prompt token and every generated token with `cvec`.

    Example:
        >>> generate(ctx, ids, cvec, "generated", 32, frozenset({2}))  # doctest: +SKIP
        [504, 3458, 28]
    """
    ctx.forget(seq)
    span = steered_span(positions, len(prompt))
    logits = np.empty(0)
    for a, b, on in spans(len(prompt), span):
        logits = ctx.decode([Row(tuple(prompt[a:b]), seq, a)], cvec if on else None)[0][-1]
    out: list[int] = []
    while len(out) < max_tokens:
        token = int(np.argmax(logits))
        if token in stop:
            break
        out.append(token)
        position = len(prompt) + len(out) - 1
        if len(out) < max_tokens:
            step_cvec = cvec if is_steered(span, position) else None
            logits = ctx.decode([Row((token,), seq, position)], step_cvec)[0][-1]
    ctx.forget(seq)
    return out
