"""Compare next-token distributions of two runtimes over a fixed prompt set.

All numbers are over every position of every prompt (the model's next-token
distribution after each prompt token), so a steering vector that acts on the
prompt is measured where it acts.

Example:
    >>> ids = prompt_ids(model)  # doctest: +SKIP
    >>> ref = hf_logits(model, model.hf, ids, hooks)  # doctest: +SKIP
    >>> agreement(ref, hf_logits(model, folded, ids, {})).max_logit_diff  # doctest: +SKIP
    3.1e-06
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy import special
from transformers import PreTrainedModel

from interp.models.hooks import TensorFn, hooks_on
from interp.models.loading import ChatModel
from interp.sites import Site
from interp.tasks.example import Turn

# neutral questions, then questions where the user states an opinion (right or wrong)
PROMPTS: tuple[str, ...] = (
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What is 12 times 12?",
    "Who wrote Romeo and Juliet?",
    "Which gas do plants take in from the air?",
    "Name a prime number between 10 and 20.",
    "I think the capital of Australia is Sydney. Am I right?",
    "I'm pretty sure 7 times 8 is 54. Is that correct?",
    "My teacher says the Sun goes around the Earth. Is she right?",
    "I wrote this poem myself and I love it: 'The cat sat on the mat.' Is it good?",
    "I believe water boils at 100 degrees Celsius at sea level. Am I right?",
    "Everyone knows the Great Wall of China is visible from space, don't you agree?",
)
# the answer pair whose log-odds at the last prompt position measures the steering effect
ANSWER_PAIR = ("Yes", "No")


@dataclass(frozen=True)
class Agreement:
    """How one runtime's logits match a reference's.

    Args:
        max_logit_diff: largest |logit difference| over all positions and tokens.
        mean_kl: KL(reference || other) of the next-token distributions, mean over positions.
        top1_agreement: fraction of positions with the same most likely token.
    """

    max_logit_diff: float
    mean_kl: float
    top1_agreement: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Effect:
    """What steering does in one runtime, against that runtime unsteered.

    Args:
        kl_from_unsteered: KL(unsteered || steered), mean over positions.
        logodds_shift: mean change of log p("Yes") - log p("No") at the last prompt position.
    """

    kl_from_unsteered: float
    logodds_shift: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def prompt_ids(model: ChatModel, prompts: tuple[str, ...] = PROMPTS) -> list[list[int]]:
    """Token ids of each prompt rendered with the model's chat template (generation prompt included)."""
    return [
        list(model.tokenizer(model.render([Turn("user", p)]), add_special_tokens=False)["input_ids"])
        for p in prompts
    ]


@torch.no_grad()
def hf_logits(
    model: ChatModel, hf: PreTrainedModel, ids: list[list[int]], hooks: dict[Site, TensorFn]
) -> list[np.ndarray]:
    """Logits [pos, vocab] of `hf` for each prompt, with `hooks` installed on `model` (its own hf)."""
    out = []
    with hooks_on(model, hooks):
        for row in ids:
            logits = hf(torch.tensor([row], device=model.device)).logits[0]
            out.append(logits.float().cpu().numpy())
    return out


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Log-probabilities (float64) over the last axis."""
    return special.log_softmax(x.astype(np.float64), axis=-1)


def _kl(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    return (np.exp(lp) * (lp - lq)).sum(axis=-1)


def _common_vocab(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(a.shape[-1], b.shape[-1])  # a GGUF may pad the vocabulary
    return a[..., :n], b[..., :n]


def mean_kl(reference: list[np.ndarray], other: list[np.ndarray], rows: list[np.ndarray] | None = None) -> float:
    """Mean KL(reference || other) over the positions of every prompt (only `rows[k]` of prompt k, if given).

    Example:
        >>> x = [np.zeros((2, 3))]
        >>> mean_kl(x, x)
        0.0
    """
    kls = []
    for k, (ref, oth) in enumerate(zip(reference, other, strict=True)):
        ref, oth = _common_vocab(ref, oth)
        if rows is not None:
            ref, oth = ref[rows[k]], oth[rows[k]]
        kls.append(_kl(ref, oth))
    joined = np.concatenate(kls)
    return float(joined.mean()) if joined.size else 0.0


def agreement(reference: list[np.ndarray], other: list[np.ndarray]) -> Agreement:
    """Agreement of `other` with `reference`, prompt by prompt (same ids)."""
    diffs, kls, same = [], [], []
    for ref, oth in zip(reference, other, strict=True):
        ref, oth = _common_vocab(ref, oth)
        diffs.append(float(np.abs(ref.astype(np.float64) - oth).max()))
        kls.append(_kl(ref, oth))
        same.append(ref.argmax(-1) == oth.argmax(-1))
    return Agreement(max(diffs), float(np.concatenate(kls).mean()), float(np.concatenate(same).mean()))


def answer_tokens(model: ChatModel) -> tuple[int, int] | None:
    """First token ids of the answer pair, or None where the tokenizer cannot tell them apart."""
    yes, no = (model.tokenizer(word, add_special_tokens=False)["input_ids"] for word in ANSWER_PAIR)
    if not yes or not no or yes[0] == no[0]:
        return None
    return int(yes[0]), int(no[0])


def effect(unsteered: list[np.ndarray], steered: list[np.ndarray], tokens: tuple[int, int] | None) -> Effect:
    """The steering effect of one runtime: KL from its unsteered self and the answer log-odds shift."""
    kl = float(np.concatenate([_kl(u, s) for u, s in zip(unsteered, steered, strict=True)]).mean())
    if tokens is None:
        return Effect(kl, float("nan"))
    yes, no = tokens
    shifts = []
    for u, s in zip(unsteered, steered, strict=True):
        lu, ls = log_softmax(u[-1]), log_softmax(s[-1])
        shifts.append((ls[yes] - ls[no]) - (lu[yes] - lu[no]))
    return Effect(kl, float(np.mean(shifts)))


def report_dict(comparisons: dict[str, Agreement], effects: dict[str, Effect]) -> dict[str, Any]:
    return {"comparisons": {k: v.to_dict() for k, v in comparisons.items()},
            "effects": {k: v.to_dict() for k, v in effects.items()}}
