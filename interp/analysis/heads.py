"""Head attribution: which attention heads write the deference direction, and does ablating them matter?

Per head, at the last prompt position of the clean and corrupted runs:

- its output in residual space, `z_h @ W_O[:, h]ᵀ` (hook_z of that head
  times its slice of o_proj; the heads plus o_proj's bias sum to
  `hook_attn_out`), projected on the unit direction (`proj_*`; the ranking
  uses `proj_diff`, corrupt minus clean: what the head writes along the
  direction *because* the user stated an opinion);
- its direct effect on the logit difference user - correct through the
  final norm linearised at the actual final residual (`dla_*`, see
  `interp.analysis.dla`);
- its attention from the last position to the user's claim tokens (`attn_claim`).

Ablation: the top-k heads of the ranking are replaced (mean ablation: by
their mean hook_z over the ablated positions of all prompts of the dataset;
zero ablation: by 0) and the change in deference is measured, next to k
random heads (several seeded draws). Deference = LD(clean) - LD(corrupt)
with LD = logit[correct] - logit[user] at the last prompt position: how far
the user's claim moves the model toward the user's answer. By default heads
are ablated at the answer-side positions (the shared suffix after the claim,
in both runs), where the claim's information has to be read to reach the
answer; their processing of the claim tokens themselves is left intact
(`span="all"` ablates every position, at several times the cost).

Example:
    >>> data = collect_heads(model, contrasts)  # doctest: +SKIP
    >>> ranking = score_heads(data, direction)  # doctest: +SKIP
    >>> ablation_study(model, contrasts, top_heads(ranking, 20), data.z_mean).summary()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from interp.analysis.contrasts import Contrast, logit_diff
from interp.analysis.dla import norm_vjp, unembed_weight
from interp.analysis.residuals import LastResiduals, collect_last, unit
from interp.analysis.stepping import Edit, RowFn, Trace, rerun, trace
from interp.analysis.summary import ci_fields
from interp.models.architectures import module_at
from interp.sites import Site

if TYPE_CHECKING:
    from interp.models.loading import ChatModel

Head = tuple[int, int]  # (layer, head)
Progress = Callable[[int, int], None]


def o_proj(model: ChatModel, layer: int) -> nn.Linear:
    proj = module_at(model.blocks[layer], model.layout.o_proj)
    if not isinstance(proj, nn.Linear):
        raise NotImplementedError(f"{model.arch!r}: o_proj is {type(proj).__name__}, not nn.Linear")
    return proj


def head_outputs(model: ChatModel, z: torch.Tensor, layer: int) -> torch.Tensor:
    """Each head's write to the residual stream: z [pos, n_heads*d_head] -> [pos, n_heads, d_model].

    Summed over heads, plus o_proj's bias when it has one, this is `hook_attn_out`.

    Example:
        >>> head_outputs(model, t.sites[Site(0, "attn.hook_z")], 0).shape  # doctest: +SKIP
        torch.Size([12, 4, 64])
    """
    w = o_proj(model, layer).weight.detach()  # [d_model, n_heads*d_head]
    zh = z.reshape(z.shape[0], model.n_heads, model.d_head)  # [pos, n_heads, d_head]
    wh = w.reshape(model.d_model, model.n_heads, model.d_head)  # [d_model, n_heads, d_head]
    return torch.einsum("phk,dhk->phd", zh, wh)


@dataclass(frozen=True)
class HeadData:
    """What the ranking needs, collected in one pass over the pairs.

    Args:
        pair_ids: [pairs].
        out_last: [pairs, 2, n_layers, n_heads, d_model] head outputs at the last position (clean, corrupt).
        dla_user: [pairs, 2, n_layers, n_heads] direct effect on logit[user] - logit[correct].
        attn_claim: [pairs, n_layers, n_heads] attention of the last position to the claim (corrupt run).
        z_mean: [n_layers, n_heads, d_head] mean hook_z over the ablated positions of all prompts.
        last: the last-position residuals (for a mean-difference direction).
    """

    pair_ids: tuple[str, ...]
    out_last: torch.Tensor
    dla_user: np.ndarray
    attn_claim: np.ndarray
    z_mean: torch.Tensor
    last: LastResiduals


#: where heads are ablated: contrast -> (first corrupted position, first clean position)
SPANS: dict[str, Callable[[Contrast], tuple[int, int]]] = {
    "suffix": lambda c: (c.suffix_start, c.align[c.suffix_start]),
    "all": lambda c: (0, 0),
}


def collect_heads(model: ChatModel, contrasts: Sequence[Contrast], span: str = "suffix",
                  progress: Progress | None = None) -> HeadData:
    """Trace every pair once; keep head outputs, attention to the claim and hook_z means.

    Example:
        >>> collect_heads(model, contrasts).out_last.shape  # doctest: +SKIP
    """
    n, z_sites = model.n_layers, [Site(layer, "attn.hook_z") for layer in range(model.n_layers)]
    w_u = unembed_weight(model).float()
    outs, dlas, attns = [], [], []
    z_sum = torch.zeros(n, model.n_heads * model.d_head)
    count = 0

    def on_traces(c: Contrast, clean: Trace, bad: Trace) -> None:
        nonlocal z_sum, count
        starts = SPANS[span](c)
        pair_out = []
        for run, start in zip((clean, bad), (starts[1], starts[0]), strict=True):
            z = torch.stack([run.sites[s] for s in z_sites])  # [n_layers, pos, n_heads*d_head]
            z_sum += z[:, start:].sum(1)
            count += z.shape[1] - start
            pair_out.append(torch.stack([head_outputs(model, z[layer, -1:], layer)[0] for layer in range(n)]))
        out = torch.stack(pair_out)  # [2, n_layers, n_heads, d_model]
        x0 = torch.stack([clean.resid[-1, -1], bad.resid[-1, -1]])  # [2, d_model]
        g = norm_vjp(model, x0, w_u[c.user_token] - w_u[c.correct_token])  # [2, d_model]
        outs.append(out)
        dlas.append(torch.einsum("clhd,cd->clh", out, g).numpy())
        claim = list(c.claim or c.only_corrupt)
        assert bad.last_attention is not None
        attns.append(bad.last_attention[:, :, claim].sum(-1).numpy())

    last = collect_last(model, contrasts, on_traces, sites=z_sites, attention=True, progress=progress)
    return HeadData(
        pair_ids=last.pair_ids,
        out_last=torch.stack(outs) if outs else torch.zeros(0, 2, n, model.n_heads, model.d_model),
        dla_user=np.array(dlas), attn_claim=np.array(attns),
        z_mean=(z_sum / max(count, 1)).reshape(n, model.n_heads, model.d_head), last=last,
    )


#: ranking score -> column of the score table (largest first)
RANKINGS = {"proj_diff": "proj_diff", "dla_diff": "dla_diff", "attn_claim": "attn_claim"}


def score_heads(data: HeadData, direction: np.ndarray, rank_by: str = "proj_diff") -> pd.DataFrame:
    """One row per head with projections, DLA and attention to the claim (means and 95% CIs), ranked.

    Args:
        data: from `collect_heads`.
        direction: [d_model] (normalised here).
        rank_by: a key of RANKINGS.

    Example:
        >>> score_heads(data, v).head(3)[["layer", "head", "proj_diff"]]  # doctest: +SKIP
    """
    if rank_by not in RANKINGS:
        raise ValueError(f"unknown ranking {rank_by!r}; choose from {', '.join(RANKINGS)}")
    proj = torch.einsum("pclhd,d->pclh", data.out_last, unit(direction)).numpy()  # [pairs, 2, n_layers, n_heads]
    groups = np.array(data.pair_ids)
    rows = []
    for layer in range(proj.shape[2]):
        for head in range(proj.shape[3]):
            at = (slice(None), layer, head)
            rows.append({
                "layer": layer, "head": head, "name": f"L{layer}H{head}",
                "proj_clean": float(proj[:, 0, layer, head].mean()), "proj_corrupt": float(proj[:, 1, layer, head].mean()),
                **ci_fields("proj_diff", proj[:, 1, layer, head] - proj[:, 0, layer, head], groups),
                "dla_clean": float(data.dla_user[:, 0, layer, head].mean()),
                "dla_corrupt": float(data.dla_user[:, 1, layer, head].mean()),
                **ci_fields("dla_diff", data.dla_user[:, 1, layer, head] - data.dla_user[:, 0, layer, head], groups),
                **ci_fields("attn_claim", data.attn_claim[at], groups),
            })
    table = pd.DataFrame(rows).sort_values(RANKINGS[rank_by], ascending=False, kind="stable")
    table["rank"] = np.arange(1, len(table) + 1)
    return table.reset_index(drop=True)


def top_heads(table: pd.DataFrame, k: int) -> list[Head]:
    """The first k (layer, head) of a ranked score table."""
    return [(int(r.layer), int(r.head)) for r in table.head(k).itertuples()]


def set_heads(heads: Sequence[int], d_head: int, values: torch.Tensor) -> RowFn:
    """A RowFn on hook_z [t, n_heads*d_head] writing `values` [len(heads), d_head] into those heads."""
    index = torch.as_tensor(list(heads), dtype=torch.long)

    def fn(row: torch.Tensor) -> torch.Tensor:
        out = row.clone().reshape(row.shape[0], -1, d_head)  # [t, n_heads, d_head]
        out[:, index] = values.to(row.dtype)
        return out.reshape(row.shape)

    return fn


#: ablation mode -> value written into an ablated head, from the dataset mean [d_head]
ABLATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mean": lambda mean: mean,
    "zero": torch.zeros_like,
}


def ablation_edit(model: ChatModel, heads: Sequence[Head], mode: str, z_mean: torch.Tensor) -> Edit:
    """An Edit replacing each head's hook_z (mode "mean" or "zero") at every recomputed position."""
    if mode not in ABLATIONS:
        raise ValueError(f"unknown ablation {mode!r}; choose from {', '.join(ABLATIONS)}")
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    return Edit(sites={
        Site(layer, "attn.hook_z"): set_heads(hs, model.d_head, ABLATIONS[mode](z_mean[layer, hs]))
        for layer, hs in by_layer.items()
    })


def ablated_logit_diffs(model: ChatModel, contrasts: Sequence[Contrast], configs: Sequence[tuple[Sequence[Head], str]],
                        z_mean: torch.Tensor, span: str = "suffix", progress: Progress | None = None) -> np.ndarray:
    """LD (correct - user) under each ablation config: [pairs, configs, 2] (clean, corrupt).

    Example:
        >>> ablated_logit_diffs(model, contrasts, [([(0, 1)], "zero")], data.z_mean).shape  # doctest: +SKIP
    """
    out = np.zeros((len(contrasts), len(configs), 2))
    for i, c in enumerate(contrasts):
        starts = SPANS[span](c)
        edits = [ablation_edit(model, heads, mode, z_mean) for heads, mode in configs]
        for j, (ids, start) in enumerate(((c.clean, starts[1]), (c.corrupt, starts[0]))):
            logits = rerun(model, trace(model, ids), edits, start=start)
            out[i, :, j] = logit_diff(logits, c.correct_token, c.user_token).numpy()
        if progress is not None:
            progress(i + 1, len(contrasts))
    return out
