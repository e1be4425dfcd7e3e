"""Named token positions, resolved once per example.

| name          | rows per example | what                                                  |
| ------------- | ---------------- | ----------------------------------------------------- |
| `last_prompt` | 1                | last token before the assistant's answer               |
| `answer`      | 1                | last token of `Example.answer` (e.g. the "A" of "(A") |
| `user_claim`  | 1                | mean over the tokens of `Example.user_claim`          |
| `all`         | one per token    | every token of prompt + answer                        |

Example:
    >>> POSITIONS["last_prompt"].one_row
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from interp.tasks.example import Example

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


@dataclass(frozen=True)
class Encoded:
    """Token ids of one example and the indices every named position needs."""

    ids: tuple[int, ...]
    prompt_len: int  # tokens of the rendered prompt (up to the assistant's start)
    claim: tuple[int, ...]  # token indices of the user's claim, () if none

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Position:
    name: str
    one_row: bool  # False: one row per token

    def indices(self, enc: Encoded, example: Example) -> list[int]:
        """Token indices this position reads (averaged when `one_row` and several)."""
        return _RESOLVERS[self.name](enc, example)


def _last_prompt(enc: Encoded, ex: Example) -> list[int]:
    return [enc.prompt_len - 1]


def _answer(enc: Encoded, ex: Example) -> list[int]:
    if not ex.answer:
        raise ValueError(f"example {ex.id!r}: position 'answer' needs the field 'answer' (e.g. '(A')")
    if len(enc) <= enc.prompt_len:
        raise ValueError(f"example {ex.id!r}: the answer {ex.answer!r} added no tokens")
    return [len(enc) - 1]


def _user_claim(enc: Encoded, ex: Example) -> list[int]:
    if not enc.claim:
        raise ValueError(f"example {ex.id!r}: position 'user_claim' needs the field 'user_claim'")
    return list(enc.claim)


def _all(enc: Encoded, ex: Example) -> list[int]:
    return list(range(len(enc)))


_RESOLVERS = {"last_prompt": _last_prompt, "answer": _answer, "user_claim": _user_claim, "all": _all}

POSITIONS: dict[str, Position] = {
    "last_prompt": Position("last_prompt", True),
    "answer": Position("answer", True),
    "user_claim": Position("user_claim", True),
    "all": Position("all", False),
}


def parse_positions(spec: str | list[str]) -> list[Position]:
    names = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec) if p.strip()]
    unknown = [n for n in names if n not in POSITIONS]
    if unknown:
        raise ValueError(f"unknown position {unknown[0]!r}: choose from {', '.join(POSITIONS)}")
    if not names:
        raise ValueError("no positions given")
    return [POSITIONS[n] for n in dict.fromkeys(names)]


def encode_example(model: ChatModel, example: Example) -> Encoded:
    """Render and tokenize an example once; locate the prompt end and the claim.

    The rendered prompt (with the generation prompt) and `example.answer` are
    tokenized separately and concatenated, so the prompt's tokens are exactly
    those a generation from the prompt sees; character offsets place the
    claim's tokens.
    """
    prompt = model.render(example.turns, add_generation_prompt=True)
    enc = model.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets: list[tuple[int, int]] = enc["offset_mapping"]
    prompt_len = len(ids)
    if example.answer:
        ids += model.tokenizer(example.answer, add_special_tokens=False)["input_ids"]
    model.check_fits(len(ids), f"example {example.id!r}")
    claim: tuple[int, ...] = ()
    if example.user_claim:
        user_at = prompt.rfind(example.last_user_text)
        start = prompt.find(example.user_claim, max(user_at, 0))
        if start < 0:
            raise ValueError(f"example {example.id!r}: user_claim not found in the rendered prompt")
        end = start + len(example.user_claim)
        claim = tuple(i for i, (s, e) in enumerate(offsets) if s < end and e > start)
    return Encoded(tuple(ids), prompt_len, claim)
