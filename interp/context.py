"""Fitting a chat into the model's context: measure it, and cut it only when the user asks.

`ChatModel.check_fits` refuses a sequence longer than the context (with both
numbers); `fit_chat` is the opt-in alternative (`workbench steer --truncate`):
it drops the start of the last user message until the rendered prompt, plus the
tokens to generate, fits.

Example:
    >>> turns, dropped = fit_chat(model, (Turn("user", "word " * 5000),), reserve=48)  # doctest: +SKIP
    >>> dropped  # doctest: +SKIP
    22740
"""

from __future__ import annotations

from dataclasses import replace

from interp.errors import InputError
from interp.models.loading import ChatModel
from interp.tasks.example import Turn


def prompt_tokens(model: ChatModel, turns: tuple[Turn, ...]) -> int:
    """Tokens of the rendered chat, generation prompt included."""
    return len(model.tokenizer(model.render(list(turns)), add_special_tokens=False)["input_ids"])


def fit_chat(model: ChatModel, turns: tuple[Turn, ...], reserve: int = 0, what: str = "prompt"
             ) -> tuple[tuple[Turn, ...], int]:
    """`turns` with the start of the last user message cut so that it and `reserve` more tokens fit the context.

    Args:
        model: gives the tokenizer, the chat template and the context length.
        turns: the chat.
        reserve: tokens to keep free (the answer to generate).
        what: names the chat in the error.

    Returns:
        (the fitted turns, characters dropped from the last user message; 0 when it already fit).

    Raises:
        InputError: even an empty last message does not fit (the other turns or `reserve` are too long).
    """
    limit = model.context_length
    if limit is None or prompt_tokens(model, turns) + reserve <= limit:
        return turns, 0
    k = max(i for i, t in enumerate(turns) if t.role == "user")
    text = turns[k].content

    def cut(n: int) -> tuple[Turn, ...]:
        return (*turns[:k], replace(turns[k], content=text[n:]), *turns[k + 1:])

    if prompt_tokens(model, cut(len(text))) + reserve > limit:
        raise InputError(f"does not fit the model's context of {limit} tokens even with its last message empty",
                         path=what, expected=f"fewer tokens to generate than {reserve}, or shorter earlier turns")
    lo, hi = 0, len(text)  # the smallest cut that fits lies in (lo, hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if prompt_tokens(model, cut(mid)) + reserve <= limit:
            hi = mid
        else:
            lo = mid
    return cut(hi), hi


__all__ = ["fit_chat", "prompt_tokens"]
