"""Live generation glue for the Playground: chat text <-> turns, and token ids -> streamed text.

Decoding itself is `steering.apply.generation.greedy_stream` (KV-cached greedy loop
inside one `steer()` block, the sweep's own generation code); this module only
turns its token ids into text pieces for `st.write_stream`.

Example:
    >>> turns = parse_chat("[user]\\nIs 7 prime?")
    >>> [(t.role, t.content) for t in turns]
    [('user', 'Is 7 prime?')]
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import TYPE_CHECKING

from interp.tasks.example import ROLES, Turn

if TYPE_CHECKING:
    from interp.models.loading import ChatModel
    from steering.apply.spec import SteerSpec

_MARKER = re.compile(r"^\[(" + "|".join(ROLES) + r")\]\s*$", re.MULTILINE)


def format_chat(turns: Sequence[Turn]) -> str:
    """Turns as editable text: a `[role]` line before each turn's content.

    Example:
        >>> print(format_chat([Turn("user", "Hi"), Turn("assistant", "Hello")]))
        [user]
        Hi
        <BLANKLINE>
        [assistant]
        Hello
    """
    return "\n\n".join(f"[{t.role}]\n{t.content}" for t in turns)


def parse_chat(text: str) -> list[Turn]:
    """Inverse of `format_chat`; text without any `[role]` line is one user turn.

    Raises:
        ValueError: for an empty chat, or one that does not end with a user turn.

    Example:
        >>> [t.role for t in parse_chat("[user]\\nA\\n[assistant]\\nB\\n[user]\\nSure?")]
        ['user', 'assistant', 'user']
    """
    parts = _MARKER.split(text)
    if len(parts) == 1:
        turns = [Turn("user", text.strip())] if text.strip() else []
    else:
        if parts[0].strip():
            raise ValueError("text before the first [role] line; start the chat with [user] or [system]")
        turns = [Turn(role, body.strip()) for role, body in zip(parts[1::2], parts[2::2], strict=True)]
    if not turns or not turns[-1].content:
        raise ValueError("the chat is empty: write a user message")
    if turns[-1].role != "user":
        raise ValueError("the chat must end with a [user] turn (the model answers it)")
    return turns


def stream_answer(model: ChatModel, turns: Sequence[Turn], max_new_tokens: int, spec: SteerSpec | None = None,
                  strength: float = 0.0) -> Iterator[str]:
    """Greedy answer to `turns`, yielded as text pieces as the tokens come (steered when `spec` is given).

    The underlying generator is closed on exit, so the steering hooks never outlive the answer.

    Example:
        >>> "".join(stream_answer(model, [Turn("user", "Hi")], 8))  # doctest: +SKIP
        'Hello! How can I help'
    """
    from steering.apply.generation import greedy_stream, stop_tokens

    tok = model.tokenizer
    stop = stop_tokens(model)
    ids: list[int] = []
    shown = ""
    steps = greedy_stream(model, [list(turns)], max_new_tokens, spec, [strength] if spec is not None else None)
    with closing(steps):
        for step in steps:
            token = step[0]
            if token is None or token in stop:
                break
            ids.append(token)
            text = tok.decode(ids, skip_special_tokens=True)
            if text.startswith(shown) and not text.endswith("\ufffd"):
                yield text[len(shown):]
                shown = text
    text = tok.decode(ids, skip_special_tokens=True)
    if text.startswith(shown) and len(text) > len(shown):
        yield text[len(shown):]
