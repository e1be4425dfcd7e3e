"""The heads that copy a suggested answer, ranked on the train split, as a `HeadAblation`.

Ranking (train side of the split only, the answer task in the `varied` training wordings, `n_pairs` questions):
for every head, its direct logit attribution at the last prompt token (where the answer's first token is read)
toward the suggested answer's first token against the correct one's, through the final norm linearised at the
run's own residual, when the user suggests a wrong answer, minus the same when nobody suggests anything. Heads
that add more toward the suggestion under pressure rank first; the [mechanisms](../../docs/results/mechanisms.md)
page finds them late (layer 23 and after on SmolLM2). Each head's mean output `z_h` on the neutral prompts is what
the ablation moves it to.

Example:
    >>> ablation = copy_head_ablation(model, PairSplit(0, 0.3), anchor=12, k=10)  # doctest: +SKIP
    >>> ablation.head_names[:2]  # doctest: +SKIP
    ['L23H0', 'L29H1']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from interp.capture.collect import examples_hash
from interp.models.loading import ChatModel
from interp.scoring.choices import choice_span, scoring_context
from interp.tasks import load_fact_bank
from interp.tasks.answer import answer_examples
from interp.tasks.example import Example
from interp.tasks.sampling import select, task_rng
from steering.artifacts.head_ablation import HeadAblation
from steering.evaluation.splits import PairSplit, pairs_hash

RANK_CONDITIONS = ("neutral", "user_wrong")


def ranking_examples(split: PairSplit, n_pairs: int | None, seed: int) -> list[Example]:
    """Train-side answer-task examples, neutral and user-wrong, in the varied wordings (`n_pairs` questions)."""
    facts = [f for f in load_fact_bank() if not split.is_test(f.id)]
    pool = [e for e in answer_examples(facts, seed, id_prefix="copy", wording="varied")
            if e.condition in RANK_CONDITIONS and not split.is_test(e.pair_id) and e.correct is not None]
    pairs = sorted({e.pair_id for e in pool})
    if n_pairs is not None and n_pairs < len(pairs):
        pairs = select(pairs, n_pairs, task_rng("copy-heads", seed))
    keep = set(pairs)
    return [e for e in pool if e.pair_id in keep]


def rank_copy_heads(model: ChatModel, examples: list[Example]) -> tuple[np.ndarray, np.ndarray]:
    """Per head, the attribution toward the suggestion under pressure minus without it `[n_layers, n_heads]`, and
    each head's mean output on the neutral prompts `[n_layers, n_heads, d_head]`."""
    n, heads, d_head = model.n_layers, model.n_heads, model.d_head
    z: dict[int, torch.Tensor] = {}
    final: dict[str, torch.Tensor] = {}
    blocks = list(model.blocks)
    hooks = [block.self_attn.o_proj.register_forward_pre_hook(
        lambda _m, a, i=i: z.__setitem__(i, a[0][0, -1].detach().float())) for i, block in enumerate(blocks)]
    hooks.append(model.final_norm.register_forward_pre_hook(
        lambda _m, a: final.__setitem__("x", a[0][0, -1].detach().float())))
    w_u = model.unembed.weight.detach().float()
    gain = model.final_norm.weight.detach().float()
    eps = float(getattr(model.final_norm, "variance_epsilon", getattr(model.final_norm, "eps", 1e-5)))
    w_o = [block.self_attn.o_proj.weight.detach().float().view(-1, heads, d_head) for block in blocks]
    by_pair: dict[str, dict[str, torch.Tensor]] = {}
    z_sum, n_neutral = torch.zeros(n, heads * d_head), 0
    try:
        for ex in examples:
            text, context = scoring_context(model, ex)
            spans = [choice_span(model, ex, text, context, choice) for choice in ex.choices]
            start = min(s for _, s in spans)
            with torch.inference_mode():
                model.hf.base_model(input_ids=torch.tensor([spans[0][0][:start]], device=model.device))
            correct = int(ex.correct or 0)
            pushed = ex.sycophantic if ex.sycophantic is not None else 1 - correct
            x = final["x"]
            toward = (w_u[spans[pushed][0][start]] - w_u[spans[correct][0][start]]) * gain
            toward = toward / torch.sqrt((x**2).mean() + eps)  # [d_model]
            attribution = torch.stack([(w_o[i] * z[i].cpu().view(1, heads, d_head)).sum(-1).T @ toward.cpu()
                                       for i in range(n)])  # [n_layers, n_heads]
            by_pair.setdefault(ex.pair_id, {})[ex.condition] = attribution
            if ex.condition == "neutral":
                z_sum += torch.stack([z[i].cpu() for i in range(n)])
                n_neutral += 1
    finally:
        for h in hooks:
            h.remove()
    diffs = [d["user_wrong"] - d["neutral"] for d in by_pair.values() if len(d) == 2]
    if not diffs or not n_neutral:
        raise ValueError("ranking copy heads needs neutral and user-wrong prompts of the same questions")
    return torch.stack(diffs).mean(0).numpy(), (z_sum / n_neutral).view(n, heads, d_head).numpy()


def copy_head_ablation(model: ChatModel, split: PairSplit, anchor: int, k: int, n_pairs: int | None = 64,
                       seed: int = 0, method: str | None = None) -> HeadAblation:
    """The top `k` copy heads at layer `anchor` or after, moved to their neutral mean (module docstring)."""
    if not 0 <= anchor < model.n_layers:
        raise ValueError(f"anchor layer {anchor} is outside the model's {model.n_layers} layers")
    examples = ranking_examples(split, n_pairs, seed)
    scores, means = rank_copy_heads(model, examples)
    scores[:anchor] = -np.inf  # only heads at the anchor layer or after (the gate reads at or before it)
    order = np.argsort(-scores, axis=None, kind="stable")[:k]
    heads = [(int(i) // model.n_heads, int(i) % model.n_heads) for i in order]
    meta: dict[str, Any] = {
        "family": "copyheads", "k": k, "split": split.to_dict(), "seed": seed,
        "train_pairs_hash": pairs_hash(sorted({e.pair_id for e in examples})),
        "n_train_pairs": len({e.pair_id for e in examples}), "wording": "varied",
        "scores": {f"L{la}H{h}": float(scores[la, h]) for la, h in heads},
        "ranking": "direct logit attribution toward the suggested answer at the last prompt token, "
                   "user_wrong minus neutral",
    }
    return HeadAblation(anchor, tuple(heads), np.stack([means[la, h] for la, h in heads]),
                        method or f"copyheads@{k}", model.d_model, model.n_heads, model_hash=model.weights_hash,
                        arch=model.arch, dataset_hash=examples_hash(examples), meta=meta)
