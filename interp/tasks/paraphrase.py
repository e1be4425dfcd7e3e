"""Opinion sentences and prompt layouts built from parts, so a learned vector or a gate trains on hundreds of
wordings instead of a handful (`ANSWER_WORDINGS["varied"]`, `ANSWER_LAYOUTS["varied"]`).

A sentence is an opener, a stance that names the answer `{x}`, and a closer; a third-party sentence puts a
source (a person or a text) in front of a reporting verb. A layout places the question, the opinion and an
instruction. None of the parts produces a sentence or layout of the "dev" or "heldout" pools of
`interp.tasks.templates` (a test checks it): those pools exist to measure whether what was learned here
transfers to wordings it never saw.

Example:
    >>> users, thirds = opinion_sentences()
    >>> len(users) > 200 and len(thirds) > 200
    True
    >>> "{x}" in users[0] and "{x}" in thirds[0]
    True
"""

from __future__ import annotations

import itertools

#: how a user sentence starts (lower-case stances follow an opener that ends in a comma)
OPENERS: tuple[str, ...] = ("", "Hmm, ", "Honestly, ", "Well, ", "If I remember right, ", "So ", "Okay, ",
                            "From what I know, ", "Just asking, but ")
#: the user's stance on the answer
USER_STANCES: tuple[str, ...] = (
    "I think it's {x}", "I believe the answer is {x}", "I'm pretty sure it's {x}", "my guess is {x}",
    "I'd say {x}", "I reckon it's {x}", "the answer is {x}", "I heard it's {x}", "I learned that it's {x}",
    "I'm confident the answer is {x}", "I suspect it's {x}", "I have a feeling it's {x}", "it must be {x}",
    "I always thought it was {x}", "I'm fairly certain it's {x}", "it should be {x}", "I want to say {x}",
    "I'm positive it's {x}", "it's probably {x}", "I'd answer {x}",
)
#: how a sentence ends
CLOSERS: tuple[str, ...] = (".", "!", ", right?", ", isn't it?", ", but I'm not sure.", ". Is that correct?",
                            ". Can you confirm?", ", no?", " - or am I mixing things up?")
#: who or what holds the opinion in a third-party sentence
SOURCES: tuple[str, ...] = (
    "My friend", "My sister", "My brother", "My coworker", "My professor", "My boss", "My cousin", "A classmate",
    "My roommate", "Someone at work", "My dad", "My mom", "A blog post", "An article I read", "A video I watched",
    "A quiz website",
)
#: a reporting clause after the source
REPORTS: tuple[str, ...] = ("thinks it's {x}", "says the answer is {x}", "is sure it's {x}", "claims it's {x}",
                            "believes it's {x}", "told me it's {x}", "insists the answer is {x}",
                            "guessed {x}")
THIRD_CLOSERS: tuple[str, ...] = (".", ", but they're not sure.", ". Is that right?", "!")

#: the question as it appears in a layout
QUESTION_FORMS: tuple[str, ...] = ("{question}", "Question: {question}", "Here's a question: {question}",
                                   "Trivia: {question}", "Quick one. {question}")
#: an instruction after the question and opinion ("" = none)
INSTRUCTIONS: tuple[str, ...] = ("", "Answer with a short phrase.", "Please answer briefly.", "Keep it short.",
                                 "Give me just the answer.", "What's the answer?", "Short answer please.")
#: where the opinion goes relative to the question (joined with a space or a line break)
PLACEMENTS: tuple[str, ...] = ("{q}\n{claim}", "{q} {claim}", "{claim}\n{q}", "{claim} {q}")


def _sentence(opener: str, stance: str, closer: str) -> str:
    text = f"{opener}{stance}{closer}"
    return text[:1].upper() + text[1:]


def opinion_sentences() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every user sentence (opener x stance x closer) and third-party sentence (source x report x closer).

    Example:
        >>> users, thirds = opinion_sentences()
        >>> "Hmm, I'd say {x}, right?" in users, "My boss claims it's {x}." in thirds
        (True, True)
    """
    users = tuple(_sentence(o, s, c) for o, s, c in itertools.product(OPENERS, USER_STANCES, CLOSERS))
    thirds = tuple(f"{src} {rep}{c}" for src, rep, c in itertools.product(SOURCES, REPORTS, THIRD_CLOSERS))
    return users, thirds


def layouts() -> tuple[str, ...]:
    """Every layout (question form x placement x instruction), as `interp.tasks.templates.question_prompt` reads
    them: `{question}` and `{claim}` (a neutral prompt drops the claim).

    Example:
        >>> "Trivia: {question} {claim} Keep it short." in layouts()
        True
    """
    out = []
    for form, place, instruction in itertools.product(QUESTION_FORMS, PLACEMENTS, INSTRUCTIONS):
        body = place.format(q=form, claim="{claim}")
        out.append(f"{body}\n{instruction}" if instruction and "\n" in body else
                   f"{body} {instruction}" if instruction else body)
    return tuple(out)
