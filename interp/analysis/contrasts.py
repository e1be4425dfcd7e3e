"""Clean/corrupted prompt pairs, their token alignment, and the logit-difference metric.

A `Contrast` pairs two variants of one question: the clean run (default: the
neutral question) and the corrupted run (default: the user suggests a wrong
answer). The two prompts differ in length, so positions are aligned, not
indexed:

- the longest common *prefix* of token ids is aligned from the start (system
  prompt, "Question: ..."). By causality these positions carry identical
  activations in both runs, so patching them changes nothing;
- the longest common *suffix* is aligned from the end (the instruction and
  the assistant header). This is where the clean and corrupted runs differ
  and patching is informative;
- the positions between them exist only in the corrupted run (the user's
  claim). They have no clean counterpart: `align` marks them -1, and
  analyses report them as such instead of inventing a partner.

The metric is the logit difference at the last prompt position between the
first token of the correct answer and the first token of the user's answer
(`logit_diff`, positive = the model prefers the correct answer). Pairs
whose two answers start with the same token carry no signal and are skipped.

Example:
    >>> align_positions((1, 2, 9, 9), (1, 2, 7, 7, 7, 9, 9))
    (0, 1, -1, -1, -1, 2, 3)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from interp.capture.positions import encode_example
from interp.tasks.example import Example

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


@dataclass(frozen=True)
class Contrast:
    """One question's clean and corrupted prompts, aligned.

    Args:
        pair_id: the question's pair id.
        clean: token ids of the clean prompt (e.g. neutral).
        corrupt: token ids of the corrupted prompt (e.g. user_wrong).
        align: for each corrupted position, the clean position, or -1 (no counterpart).
        claim: positions of the user's claim in `corrupt` (from `encode_example`).
        correct_token: first token of the correct answer.
        user_token: first token of the answer the user pushes.
    """

    pair_id: str
    clean: tuple[int, ...]
    corrupt: tuple[int, ...]
    align: tuple[int, ...]
    claim: tuple[int, ...]
    correct_token: int
    user_token: int

    @property
    def suffix_start(self) -> int:
        """First position from which every corrupted position has a clean partner
        and the runs may differ: after the last unpartnered position, else the
        first substituted token (the prompt's length when the prompts are equal)."""
        unpartnered = [i for i, a in enumerate(self.align) if a < 0]
        if unpartnered:
            return unpartnered[-1] + 1
        differ = [i for i, a in enumerate(self.align) if self.corrupt[i] != self.clean[a]]
        return differ[0] if differ else len(self.corrupt)

    @property
    def only_corrupt(self) -> tuple[int, ...]:
        """Positions of the corrupted prompt with no clean counterpart."""
        return tuple(i for i, a in enumerate(self.align) if a < 0)


def align_positions(clean: Sequence[int], corrupt: Sequence[int]) -> tuple[int, ...]:
    """For each corrupted position, its clean partner: common prefix from the start,
    common suffix from the end, -1 in between (prompts of equal length are
    partnered position by position: their differing middle is a substitution).

    Args:
        clean: clean token ids.
        corrupt: corrupted token ids.

    Example:
        >>> align_positions((5, 6), (5, 6))
        (0, 1)
    """
    n_clean, n_corrupt = len(clean), len(corrupt)
    limit = min(n_clean, n_corrupt)
    head = 0
    while head < limit and clean[head] == corrupt[head]:
        head += 1
    tail = 0
    while tail < limit - head and clean[n_clean - 1 - tail] == corrupt[n_corrupt - 1 - tail]:
        tail += 1
    if n_clean == n_corrupt:  # same length: the differing middle is a substitution, partnered 1:1
        return tuple(range(n_corrupt))
    return tuple(
        i if i < head else n_clean - (n_corrupt - i) if i >= n_corrupt - tail else -1 for i in range(n_corrupt)
    )


def first_token(model: ChatModel, text: str) -> int:
    """Token id that starts `text` when the assistant's reply begins with it."""
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"answer {text!r} has no tokens")
    return int(ids[0])


def logit_diff(logits: torch.Tensor, correct: int, user: int) -> torch.Tensor:
    """logit[correct] - logit[user] over the last axis: [..., vocab] -> [...]."""
    return logits[..., correct] - logits[..., user]


def prompt_ids(model: ChatModel, example: Example) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(prompt token ids, claim positions) of an example, without any answer prefix."""
    enc = encode_example(model, example)
    return enc.ids[: enc.prompt_len], tuple(i for i in enc.claim if i < enc.prompt_len)


@dataclass(frozen=True)
class ContrastSet:
    """The usable contrasts and, per skipped pair id, why it was skipped."""

    contrasts: list[Contrast]
    skipped: dict[str, str]


def make_contrasts(
    model: ChatModel,
    examples: Sequence[Example],
    clean: str = "neutral",
    corrupt: str = "user_wrong",
    n_pairs: int | None = None,
    seed: int = 0,
) -> ContrastSet:
    """Pair the `clean` and `corrupt` conditions of each question.

    Pair ids are shuffled with `seed` and the first `n_pairs` usable ones kept.

    Args:
        model: gives the tokenizer and chat template.
        examples: examples with both conditions sharing `pair_id`.
        clean: condition of the clean run.
        corrupt: condition of the corrupted run (needs `correct` and `sycophantic`).
        n_pairs: how many usable pairs to keep; None keeps all.
        seed: order of the pairs.

    Example:
        >>> cs = make_contrasts(model, build_task("answer", n=10), n_pairs=5)  # doctest: +SKIP
        >>> len(cs.contrasts), sorted(set(cs.skipped.values()))  # doctest: +SKIP
    """
    by_pair: dict[str, dict[str, Example]] = defaultdict(dict)
    for ex in examples:
        by_pair[ex.pair_id][ex.condition] = ex
    pair_ids = sorted(by_pair)
    order = np.random.default_rng(seed).permutation(len(pair_ids))
    kept: list[Contrast] = []
    skipped: dict[str, str] = {}
    for index in order:
        if n_pairs is not None and len(kept) >= n_pairs:
            break
        pair_id = pair_ids[int(index)]
        variants = by_pair[pair_id]
        if clean not in variants or corrupt not in variants:
            skipped[pair_id] = f"lacks {clean!r} or {corrupt!r}"
            continue
        bad = variants[corrupt]
        if bad.correct is None or bad.sycophantic is None:
            skipped[pair_id] = "corrupted example has no correct/sycophantic answer"
            continue
        correct = first_token(model, bad.choices[bad.correct])
        user = first_token(model, bad.choices[bad.sycophantic])
        if correct == user:
            skipped[pair_id] = "both answers start with the same token"
            continue
        clean_ids, _ = prompt_ids(model, variants[clean])
        bad_ids, claim = prompt_ids(model, bad)
        align = align_positions(clean_ids, bad_ids)
        if -1 not in align and clean_ids == bad_ids:
            skipped[pair_id] = "clean and corrupted prompts are identical"
            continue
        kept.append(Contrast(pair_id, clean_ids, bad_ids, align, claim, correct, user))
    return ContrastSet(kept, skipped)
