"""How an answer choice is tokenised for scoring, shared by the scorer, its reference and head attribution.

The context is the rendered prompt plus the scoring prefix (`scoring_prefix`).
Each choice is tokenised jointly with the context (a choice's first token may
merge with the context's end, e.g. a leading space); its scored tokens start
at the first position where the joint tokens leave the context's
(`choice_span`). The table every scorer returns is built by `choice_table`.

Example:
    >>> from interp.tasks.example import Example, Turn
    >>> scoring_prefix(Example("a", "p", "caa", "honest", (Turn("user", "q"),), ("A", "B"), answer="(B"))
    '('
    >>> choice_table({(0, 1): [-1.0, -2.0], (0, 0): [-0.5]}).to_dict("list")["mean_logprob"]
    [-0.5, -1.5]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from interp.tasks.example import Example

if TYPE_CHECKING:
    from interp.models.loading import ChatModel

# called with the example index of every row of a batch; returns a context to run that batch in
RowContext = Callable[[list[int]], AbstractContextManager[object]]


def scoring_prefix(example: Example) -> str:
    """Text between the rendered prompt and a choice.

    An `answer` that already ends with a choice (CAA's "(A") is a contrast completion:
    the choices are scored in its place, after the rest ("(").

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


def scoring_context(model: ChatModel, example: Example) -> tuple[str, list[int]]:
    """The text a choice is scored after (rendered prompt + scoring prefix) and its tokens.

    Raises:
        ValueError: the example has no choices, or its context does not fit the model (naming the example).
    """
    if not example.choices:
        raise ValueError(f"example {example.id!r}: no choices to score")
    text = model.render(example.turns) + scoring_prefix(example)
    context = list(model.tokenizer(text, add_special_tokens=False)["input_ids"])
    model.check_fits(len(context), f"example {example.id!r}")
    return text, context


def choice_span(model: ChatModel, example: Example, text: str, context: Sequence[int],
                choice: str) -> tuple[list[int], int]:
    """`text + choice` tokenised together, and the index of the choice's first scored token.

    The index is where the joint tokens first leave `context` (below `len(context)` when the
    choice's first token merged with the context's end); tokens from there on are scored.

    Raises:
        ValueError: the choice adds no token of its own (naming the example and the choice).
    """
    full = list(model.tokenizer(text + choice, add_special_tokens=False)["input_ids"])
    start = len(context)
    while start > 0 and full[:start] != list(context[:start]):
        start -= 1
    if start >= len(full) or start == 0:
        raise ValueError(f"example {example.id!r}: choice {choice!r} adds no scorable tokens")
    return full, start


def choice_table(logprobs: Mapping[tuple[int, int], Sequence[float]]) -> pd.DataFrame:
    """The scorers' table from each (example, choice)'s token log-probabilities, in token order.

    Returns:
        One row per (example, choice), sorted: `example`, `choice`, `logprob` (the sum over the
        choice's tokens), `n_tokens`, `mean_logprob`.
    """
    keys = sorted(logprobs)
    logprob = np.array([sum(logprobs[key]) for key in keys])
    n_tokens = np.array([len(logprobs[key]) for key in keys])
    return pd.DataFrame({"example": [key[0] for key in keys], "choice": [key[1] for key in keys],
                         "logprob": logprob, "n_tokens": n_tokens, "mean_logprob": logprob / n_tokens})
