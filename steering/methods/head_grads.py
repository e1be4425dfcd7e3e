"""Per-head activations and margin gradients on hook_z, for ranking heads (`steering.methods.heads`).

Two passes over the training examples:

- prompts of both conditions, no gradient: each head's z at the last prompt
  token (`last_prompt`) and the residual norm there (`hook_resid_post`);
- the user-pressure examples tokenized as the scorer does (`interp.scoring.choices`: rendered
  prompt + scoring prefix + each choice), one sequence per choice, with a zero tensor
  added to every layer's hook_z so that `d margin / d z` comes back in one
  backward. margin = mean log-prob of the correct choice's tokens minus that
  of the suggested one (the content scoring the sweep measures). The
  gradient is summed over the positions steering reaches: "generated" = from
  the last prompt token on (`steering.apply.spec.GENERATED_OFFSET`), or "all".

Example:
    >>> g = collect_head_grads(model, user_examples, control_examples)  # doctest: +SKIP
    >>> g.grad.shape  # doctest: +SKIP
    (48, 30, 9, 64)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from interp.models.hooks import TensorFn, hooks_on
from interp.models.loading import ChatModel
from interp.scoring.choices import choice_span, scoring_context
from interp.sites import Site
from interp.tasks.example import Example
from steering.apply.spec import GENERATED_OFFSET

GRAD_POSITIONS = ("generated", "all")


@dataclass(frozen=True, eq=False)
class HeadGrads:
    """What the ranking needs, per pair (user_wrong example and its control, in the same order).

    Args:
        pair_ids: [pairs].
        z_user: [pairs, n_layers, n_heads, d_head] hook_z at last_prompt under user pressure.
        z_control: [pairs, n_layers, n_heads, d_head] the same under the third-party control.
        grad: [pairs, n_layers, n_heads, d_head] d margin / d z_h summed over the steered positions (user run).
        margin: [pairs] the user-run margin (mean logprob correct - suggested).
        resid_norms: layer -> mean |hook_resid_post| at last_prompt over both conditions.
    """

    pair_ids: tuple[str, ...]
    z_user: np.ndarray
    z_control: np.ndarray
    grad: np.ndarray
    margin: np.ndarray
    resid_norms: dict[int, float]


@dataclass(frozen=True)
class _Row:
    example: int
    ids: list[int]
    prompt_len: int
    reads: list[tuple[int, int]]  # (position predicting the token, token id)
    weight: float  # +1/n (correct), -1/n (suggested)


def _prompt_ids(model: ChatModel, ex: Example) -> list[int]:
    return list(model.tokenizer(model.render(ex.turns), add_special_tokens=False)["input_ids"])


def _rows(model: ChatModel, examples: Sequence[Example]) -> list[_Row]:
    """One row per scored choice (correct, suggested), tokenized as the scorer does (`interp.scoring.choices`)."""
    rows = []
    for i, ex in enumerate(examples):
        if ex.correct is None or ex.sycophantic is None or ex.correct == ex.sycophantic:
            raise ValueError(f"example {ex.id!r}: needs distinct correct and sycophantic choices")
        text, context = scoring_context(model, ex)
        prompt_len = len(_prompt_ids(model, ex))
        for j, sign in ((ex.correct, 1.0), (ex.sycophantic, -1.0)):
            full, start = choice_span(model, ex, text, context, ex.choices[j])
            reads = [(t - 1, full[t]) for t in range(start, len(full))]
            rows.append(_Row(i, full, prompt_len, reads, sign / len(reads)))
    return rows


def _pad(model: ChatModel, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask `[batch, width]`."""
    pad = int(model.tokenizer.pad_token_id or 0)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(list(s))
        mask[r, : len(s)] = 1
    return ids.to(model.device), mask.to(model.device)


def _reader(seen: dict[Site, torch.Tensor], site: Site, rows: torch.Tensor, last: torch.Tensor) -> TensorFn:
    """A reading hook keeping `h[rows, last]` `[batch, d]` of each forward in `seen[site]`."""
    def fn(h: torch.Tensor) -> None:
        seen[site] = h[rows, last].detach().float().cpu()

    return fn


def _adder(eps: dict[int, torch.Tensor], layer: int) -> TensorFn:
    """A hook adding a fresh zero leaf `eps[layer]` (requires grad) to hook_z: its gradient is d out / d z."""
    def fn(z: torch.Tensor) -> torch.Tensor:
        eps[layer] = torch.zeros_like(z, requires_grad=True)  # [batch, pos, n_heads*d_head]
        return z + eps[layer]

    return fn


def last_prompt_z(model: ChatModel, examples: Sequence[Example], batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(z `[n, n_layers, n_heads, d_head]`, |resid_post| `[n, n_layers]`) at each prompt's last token.

    Example:
        >>> z, norms = last_prompt_z(model, examples[:2])  # doctest: +SKIP
    """
    n_layers, zs, norms = model.n_layers, [], []
    for b0 in range(0, len(examples), batch_size):
        seqs = [_prompt_ids(model, ex) for ex in examples[b0 : b0 + batch_size]]
        last = torch.tensor([len(s) - 1 for s in seqs], device=model.device)
        rows = torch.arange(len(seqs), device=model.device)
        seen: dict[Site, torch.Tensor] = {}
        sites = [Site(layer, kind) for layer in range(n_layers) for kind in ("attn.hook_z", "hook_resid_post")]
        ids, mask = _pad(model, seqs)
        with torch.inference_mode(), hooks_on(model, {s: _reader(seen, s, rows, last) for s in sites}):
            model.hf.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
        zs.append(torch.stack([seen[Site(layer, "attn.hook_z")] for layer in range(n_layers)], 1))
        norms.append(torch.stack([seen[Site(layer, "hook_resid_post")].norm(dim=-1) for layer in range(n_layers)], 1))
    z = torch.cat(zs).reshape(len(examples), n_layers, model.n_heads, model.d_head)
    return z.numpy(), torch.cat(norms).numpy()


def margin_grads(model: ChatModel, examples: Sequence[Example], positions: str = "generated", batch_size: int = 8,
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(d margin / d z summed over `positions` `[n, n_layers, n_heads, d_head]`, margin `[n]`) per example.

    Example:
        >>> grad, margin = margin_grads(model, user_examples)  # doctest: +SKIP
    """
    if positions not in GRAD_POSITIONS:
        raise ValueError(f"unknown positions {positions!r} for the attribution: choose from {', '.join(GRAD_POSITIONS)}")
    n_layers, width = model.n_layers, model.n_heads * model.d_head
    rows = _rows(model, examples)
    grad = torch.zeros(len(examples), n_layers, width, dtype=torch.float64)
    margin = np.zeros(len(examples))
    bar = tqdm(total=len(rows), desc="head grads", unit="seq", disable=not progress, dynamic_ncols=True)
    for b0 in range(0, len(rows), batch_size):
        batch = rows[b0 : b0 + batch_size]
        bar.update(len(batch))
        ids, mask = _pad(model, [r.ids for r in batch])
        eps: dict[int, torch.Tensor] = {}
        reads = [(r, t, token) for r, row in enumerate(batch) for t, token in row.reads]
        rows_b = torch.tensor([x[0] for x in reads], device=model.device)
        rows_t = torch.tensor([x[1] for x in reads], device=model.device)
        targets = torch.tensor([x[2] for x in reads], device=model.device)
        weights = torch.tensor([batch[x[0]].weight for x in reads], device=model.device)
        with torch.enable_grad(), hooks_on(model, {Site(layer, "attn.hook_z"): _adder(eps, layer)
                                                   for layer in range(n_layers)}):
            hidden = model.hf.base_model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
            logp = torch.log_softmax(model.unembed(hidden[rows_b, rows_t]).float(), dim=-1)  # [n_reads, vocab]
            token_logp = logp.gather(1, targets[:, None])[:, 0]  # [n_reads]
            objective = (weights * token_logp).sum()
            grads = torch.autograd.grad(objective, [eps[layer] for layer in range(n_layers)])
        contrib = (weights * token_logp).detach().cpu().numpy()
        for (r, _, _), value in zip(reads, contrib, strict=True):
            margin[batch[r].example] += float(value)
        g = torch.stack([x.detach().double().cpu() for x in grads], 1)  # [batch, n_layers, pos, width]
        for r, row in enumerate(batch):
            first = 0 if positions == "all" else max(row.prompt_len - GENERATED_OFFSET, 0)
            grad[row.example] += g[r, :, first : len(row.ids)].sum(1)
    bar.close()
    return grad.reshape(len(examples), n_layers, model.n_heads, model.d_head).numpy(), margin


def collect_head_grads(model: ChatModel, user: Sequence[Example], control: Sequence[Example], *,
                       positions: str = "generated", batch_size: int = 8, progress: bool = False) -> HeadGrads:
    """z at last_prompt for both conditions, and the user-run margin gradients, pair by pair.

    Args:
        model: the model.
        user: user-pressure examples (one per pair).
        control: the control example of each pair, in the same order.
        positions: where the gradient is summed ("generated" or "all").
        batch_size: sequences per pass.
        progress: show a progress bar.

    Example:
        >>> g = collect_head_grads(model, user, control)  # doctest: +SKIP
    """
    if [ex.pair_id for ex in user] != [ex.pair_id for ex in control]:
        raise ValueError("user and control examples must come in the same pair order")
    z, norms = last_prompt_z(model, [*user, *control], batch_size)
    grad, margin = margin_grads(model, user, positions, batch_size, progress)
    n = len(user)
    return HeadGrads(tuple(ex.pair_id for ex in user), z[:n], z[n:], grad, margin,
                     {layer: float(norms[:, layer].mean()) for layer in range(model.n_layers)})
