"""Greedy generation with per-row steering, streamed token by token, and degeneracy heuristics.

`greedy_stream` runs a KV-cached greedy loop over a left-padded batch and
yields each step's new token per row; with a `SteerSpec` the whole loop runs
inside one `steer()` block, so row r is steered with `strengths[r]` from its
last prompt token on ("generated", see `steering.apply.spec`) or everywhere.

Degeneracy heuristics (simple on purpose, documented so a reader can judge them):

- `repetition`: share of repeated word n-grams (n=3) in an answer,
  1 - unique/total (0 for fewer than n words);
- `empty`: the answer holds no letter or digit;
- `off_topic`: the answer has content words (lower-cased alphanumeric words
  not in STOPWORDS) and none of them occurs in the reference vocabulary
  (the question, the correct answer and the offered choices);
- `degenerate`: empty, off-topic, or repetition above 0.5.

Example:
    >>> texts = generate_texts(model, [turns], max_new_tokens=20)  # doctest: +SKIP
    >>> round(float(degeneracy(["Paris Paris Paris Paris Paris"], ["capital of France? Paris"]).iloc[0]["repetition"]), 2)
    0.67
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext

import pandas as pd
import torch

from interp.models.loading import ChatModel
from interp.tasks.example import Turn
from steering.apply.rows import steer_rows
from steering.apply.spec import RowSteering, SteerSpec

STOPWORDS = frozenset(
    "a an the is are was were be been being of in on at to for from by with and or but not no it its this that "
    "these those i you he she we they me my your our their his her as so if then than there here what which who "
    "whom whose when where why how do does did done can could will would shall should may might must have has "
    "had answer question short phrase yes sure".split()
)
_WORD = re.compile(r"[a-z0-9]+")


def encode_prompts(model: ChatModel, prompts: Sequence[Sequence[Turn]]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Left-padded `input_ids`, `attention_mask` `[batch, width]` and each row's prompt tokens."""
    tok = model.tokenizer
    seqs = [tok(model.render(list(turns)), add_special_tokens=False)["input_ids"] for turns in prompts]
    for k, s in enumerate(seqs):
        model.check_fits(len(s), f"prompt {k + 1}")
    ids, mask = pad_left(seqs, int(tok.pad_token_id or 0))
    return ids, mask, [len(s) for s in seqs]


def pad_left(seqs: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists as left-padded `input_ids` and `attention_mask` `[batch, width]`.

    Example:
        >>> ids, mask = pad_left([[5, 6], [7]], pad=0)
        >>> ids.tolist(), mask.tolist()
        ([[5, 6], [0, 7]], [[1, 1], [0, 1]])
    """
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, s in enumerate(seqs):
        ids[r, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
        mask[r, width - len(s) :] = 1
    return ids, mask


def stop_tokens(model: ChatModel) -> frozenset[int]:
    """Token ids that end an answer: the tokenizer's end-of-sequence and pad tokens (the one place this set is built)."""
    return frozenset(int(t) for t in (model.tokenizer.eos_token_id, model.tokenizer.pad_token_id) if t is not None)


def greedy_stream(
    model: ChatModel,
    prompts: Sequence[Sequence[Turn]],
    max_new_tokens: int = 32,
    spec: RowSteering | None = None,
    strengths: Sequence[float] | None = None,
) -> Generator[list[int | None], None, None]:
    """Yield, per step, the new token id of each row (None once the row has ended).

    The steering hooks stay on the model while the generator is suspended:
    consume it to the end (or close it) before running other forwards.

    Args:
        model: the model.
        prompts: one chat (turns) per row.
        max_new_tokens: steps at most.
        spec: steering (None: unsteered).
        strengths: one per row (with `spec`).

    Example:
        >>> for step in greedy_stream(model, [turns, turns], 8, spec, [0.0, -4.0]):  # doctest: +SKIP
        ...     print(step)
    """
    ids, mask, lengths = encode_prompts(model, prompts)
    if spec is not None and (strengths is None or len(strengths) != len(prompts)):
        raise ValueError("steered generation needs one strength per prompt")
    ctx = spec.context(model, list(strengths or []), lengths) if spec is not None else nullcontext()
    yield from greedy_loop(model, ids, mask, ctx, max_new_tokens)


def greedy_stream_rows(
    model: ChatModel, token_ids: Sequence[Sequence[int]], rows: Sequence[SteerSpec | None], strengths: Sequence[float],
    max_new_tokens: int = 32,
) -> Generator[list[int | None], None, None]:
    """`greedy_stream` over already-tokenized prompts, each row with its own steering (`steering.apply.rows`).

    Row r yields the same tokens as `greedy_stream` of its prompt alone with the same steering.

    Args:
        model: the model.
        token_ids: each row's rendered, tokenized prompt (no padding).
        rows: one `SteerSpec` or None (unsteered) per row.
        strengths: one strength per row.
        max_new_tokens: steps at most.

    Example:
        >>> for step in greedy_stream_rows(model, [ids_a, ids_b], [None, SteerSpec(v, (10,))], [0.0, -4.0], 8):  # doctest: +SKIP
        ...     print(step)
    """
    ids, mask = pad_left(token_ids, int(model.tokenizer.pad_token_id or 0))
    ctx = steer_rows(model, rows, strengths, [len(s) for s in token_ids])
    yield from greedy_loop(model, ids, mask, ctx, max_new_tokens)


def greedy_loop(
    model: ChatModel, ids: torch.Tensor, mask: torch.Tensor, ctx: AbstractContextManager[object], max_new_tokens: int,
    stop: frozenset[int] | None = None,
) -> Generator[list[int | None], None, None]:
    """The KV-cached greedy loop over a left-padded batch, inside `ctx` (a steering context or nullcontext).

    Args:
        model: the model.
        ids: left-padded `input_ids` `[batch, width]` (`pad_left`).
        mask: their `attention_mask`.
        ctx: entered around the loop (a `steer`/`steer_rows` context, or `nullcontext()`).
        max_new_tokens: steps at most; the loop also ends once every row has produced a stop token.
        stop: the tokens that end a row (None: `stop_tokens(model)`; empty: rows never end, the caller stops).

    Example:
        >>> ids, mask = pad_left([[1, 2, 3], [4, 5]], pad=0)  # doctest: +SKIP
        >>> next(greedy_loop(model, ids, mask, nullcontext(), 4))  # doctest: +SKIP
        [17, 42]
    """
    stop = stop_tokens(model) if stop is None else stop
    batch = int(ids.shape[0])
    done = torch.zeros(batch, dtype=torch.bool)
    device = model.device
    with torch.inference_mode(), ctx:
        position = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model.hf(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=position.to(device),
                       use_cache=True)
        cache = out.past_key_values
        last = position[:, -1]
        for _ in range(max_new_tokens):
            token = out.logits[:, -1].argmax(-1).cpu()  # [batch]
            yield [None if d else int(t) for t, d in zip(token.tolist(), done.tolist(), strict=True)]
            done |= torch.tensor([int(t) in stop for t in token.tolist()])
            if bool(done.all()):
                return
            mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype)], dim=1)
            last = last + 1
            out = model.hf(input_ids=token[:, None].to(device), attention_mask=mask.to(device),
                           position_ids=last[:, None].to(device), past_key_values=cache, use_cache=True)
            cache = out.past_key_values


def generate_texts(
    model: ChatModel,
    prompts: Sequence[Sequence[Turn]],
    max_new_tokens: int = 32,
    spec: RowSteering | None = None,
    strengths: Sequence[float] | None = None,
) -> list[str]:
    """Greedy completions of each prompt (end-of-turn tokens dropped).

    Example:
        >>> generate_texts(model, [[Turn("user", "Hi")]], 8)  # doctest: +SKIP
        ['Hello! How can I help you today?']
    """
    tokens: list[list[int]] = [[] for _ in prompts]
    stop = stop_tokens(model)
    for step in greedy_stream(model, prompts, max_new_tokens, spec, strengths):
        for r, t in enumerate(step):
            if t is not None and t not in stop:
                tokens[r].append(t)
    return [model.tokenizer.decode(t, skip_special_tokens=True) for t in tokens]


def side_by_side(
    model: ChatModel, turns: Sequence[Turn], spec: RowSteering, strength: float, max_new_tokens: int = 48
) -> Iterator[tuple[str, str]]:
    """Stream the unsteered, then the steered greedy answer: yields (which, text so far) per token.

    The two run one after the other (not as two rows of one batch), so the
    unsteered answer is exactly unsteered for every mode (clamp at strength 0
    is not a no-op).

    Args:
        model: the model.
        turns: the chat to answer.
        spec: the intervention.
        strength: its strength.
        max_new_tokens: tokens per answer at most.

    Example:
        >>> for which, text in side_by_side(model, [Turn("user", "Hi")], spec, -4.0, 8):  # doctest: +SKIP
        ...     print(which, text)
    """
    stop = stop_tokens(model)
    for which, row_spec in (("unsteered", None), ("steered", spec)):
        tokens: list[int] = []
        for step in greedy_stream(model, [turns], max_new_tokens, row_spec, [strength] if row_spec else None):
            if step[0] is not None and step[0] not in stop:
                tokens.append(step[0])
                yield which, model.tokenizer.decode(tokens, skip_special_tokens=True)
        if not tokens:
            yield which, ""


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words.

    Example:
        >>> words("The capital is Paris!")
        ['the', 'capital', 'is', 'paris']
    """
    return _WORD.findall(text.lower())


def repetition_rate(text: str, n: int = 3) -> float:
    """1 - unique/total word n-grams (0 when the text has fewer than n words).

    Example:
        >>> repetition_rate("a b c a b c"), repetition_rate("one two")
        (0.25, 0.0)
    """
    w = words(text)
    grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def is_off_topic(text: str, reference: str) -> bool:
    """True when the text has content words and none occurs in `reference`.

    Example:
        >>> is_off_topic("Bananas are yellow.", "What is the capital of France? Paris"), is_off_topic("Paris.", "Paris")
        (True, False)
    """
    content = {w for w in words(text) if w not in STOPWORDS}
    return bool(content) and not content & set(words(reference))


def degeneracy(texts: Sequence[str], references: Sequence[str], n: int = 3) -> pd.DataFrame:
    """One row per text: repetition, empty, off_topic, degenerate (see the module docstring).

    Args:
        texts: generated answers.
        references: per text, the question/answer vocabulary it should stay near.
        n: n-gram size of the repetition rate.
    """
    rows = []
    for text, ref in zip(texts, references, strict=True):
        rep = repetition_rate(text, n)
        empty = not words(text)
        off = is_off_topic(text, ref)
        rows.append({"repetition": rep, "empty": float(empty), "off_topic": float(off),
                     "degenerate": float(empty or off or rep > 0.5)})
    return pd.DataFrame(rows, columns=["repetition", "empty", "off_topic", "degenerate"])
