"""Letter format: list an example's choices as (A), (B), ... and score the letter.

On the embedded model letter formats sit at chance while content scoring
carries signal (docs/design.md, docs/results/baseline-profile.md), so evaluations report letter accuracy beside
content accuracy, never alone.

Example:
    >>> from interp.tasks.example import Example, Turn
    >>> ex = Example("q", "q", "arc", "neutral", (Turn("user", "Sky colour?"),), ("blue", "red"), correct=0)
    >>> lettered = as_letter_choices(ex)
    >>> lettered.choices, lettered.answer
    (('A', 'B'), '(')
    >>> print(lettered.turns[-1].content)
    Sky colour?
    <BLANKLINE>
    Choices:
     (A) blue
     (B) red
    Answer with the letter of the correct choice.
"""

from __future__ import annotations

from dataclasses import replace
from string import ascii_uppercase

from interp.tasks.example import Example, Turn

LETTER_INSTRUCTION = "Answer with the letter of the correct choice."


def as_letter_choices(example: Example) -> Example:
    """The same example with lettered options in the last user turn and letters as choices.

    The id gets a `/letters` suffix and `meta["format"] = "letters"`; correct
    and sycophantic indices are unchanged.
    """
    if len(example.choices) > len(ascii_uppercase):
        raise ValueError(f"example {example.id!r}: too many choices for letters")
    if example.answer:
        raise ValueError(f"example {example.id!r}: already has an answer prefix {example.answer!r}")
    letters = tuple(ascii_uppercase[: len(example.choices)])
    options = "\n".join(f" ({letter}) {text}" for letter, text in zip(letters, example.choices, strict=True))
    last = max(i for i, t in enumerate(example.turns) if t.role == "user")
    content = f"{example.turns[last].content}\n\nChoices:\n{options}\n{LETTER_INSTRUCTION}"
    turns = (*example.turns[:last], Turn("user", content), *example.turns[last + 1 :])
    return replace(example, id=f"{example.id}/letters", turns=turns, choices=letters, answer="(",
                   meta={**example.meta, "format": "letters"})
