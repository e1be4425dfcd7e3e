"""Trace one run, then rerun many edited copies of it cheaply, block by block.

Patching, knockouts and head ablations all ask the same question: "what are
the logits if the run had differed here?". `rerun` answers it for a batch of
edits at once and only recomputes what an edit can change:

- positions before `start` are untouched by every edit, so their keys and
  values are taken from the traced run (a prefix KV cache) and only
  positions `start..T-1` are recomputed;
- an edit that first acts at block `i` joins the batch at block `i`, with
  the traced residual `resid[i]` as its input; blocks before it are never
  run for it.

Both shortcuts are exact (a test compares against a plain forward). The
stepping calls the HF decoder blocks directly, so it supports the rotary,
full-attention decoders of the llama family (llama, mistral, qwen2/3, olmo2,
phi3); other architectures raise `NotImplementedError`.

Edits are made of the project's sites (TransformerLens names, installed with
`interp.models.hooks.hooks_on`), a residual replacement, and attention knockouts
(key positions hidden from the recomputed queries at given blocks).

Example:
    >>> base = trace(model, ids)  # doctest: +SKIP
    >>> patch = Edit(resid_at=5, resid={len(ids) - 1: other.resid[5, -1]})  # doctest: +SKIP
    >>> rerun(model, base, [patch], start=len(ids) - 1).shape  # doctest: +SKIP
    torch.Size([1, 49152])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from interp.models.architectures import module_at
from interp.models.hooks import TensorFn, first_tensor, hooks_on
from interp.sites import Site

if TYPE_CHECKING:
    from interp.models.loading import ChatModel

#: a function of one batch row of a site's tensor, `[t, d]` for positions start..T-1
RowFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Trace:
    """One unedited run of a prompt, with what reruns and analyses need.

    Args:
        ids: the prompt's token ids.
        resid: [n_layers + 1, pos, d_model]; `resid[i]` is the input of block i
            (`blocks.i.hook_resid_pre`), `resid[n_layers]` the final residual
            before the final norm (`blocks.{n-1}.hook_resid_post`).
        keys: per block, the cached keys [kv_heads, pos, d_head] (after rotary).
        values: per block, the cached values [kv_heads, pos, d_head].
        logits: [vocab] at the last position.
        sites: extra sites asked for, each [pos, d].
        last_attention: [n_layers, n_heads, pos], the attention of the last
            position, when asked for; else None.
    """

    ids: tuple[int, ...]
    resid: torch.Tensor
    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    logits: torch.Tensor
    sites: dict[Site, torch.Tensor]
    last_attention: torch.Tensor | None

    def resid_post(self, layer: int) -> torch.Tensor:
        """`blocks.{layer}.hook_resid_post` [pos, d_model]."""
        return self.resid[layer + 1]


@dataclass(frozen=True)
class Edit:
    """How one rerun departs from the traced run (all positions are absolute).

    Args:
        resid_at: block whose input is replaced at `resid` positions
            (`blocks.{L}.hook_resid_post` is `resid_at=L+1`; `n_layers` is the
            final residual); None for no replacement.
        resid: position -> replacement [d_model].
        sites: per site, a function of this row's tensor [t, d] (positions
            start..T-1) returning the new tensor.
        blocked: block -> key positions hidden from every later recomputed query.
    """

    resid_at: int | None = None
    resid: Mapping[int, torch.Tensor] = field(default_factory=dict)
    sites: Mapping[Site, RowFn] = field(default_factory=dict)
    blocked: Mapping[int, tuple[int, ...]] = field(default_factory=dict)

    def join(self, n_layers: int) -> int:
        """First block whose computation this edit changes (n_layers: none)."""
        firsts = [s.layer for s in self.sites] + [layer for layer, keys in self.blocked.items() if keys]
        if self.resid_at is not None:
            firsts.append(self.resid_at)
        return min(firsts, default=n_layers)


def put(positions: Sequence[int], values: torch.Tensor) -> RowFn:
    """A RowFn writing `values` [k, d] at row-relative `positions` (k of them).

    Example:
        >>> fn = put([0], torch.ones(1, 2))
        >>> fn(torch.zeros(3, 2))[0].tolist()
        [1.0, 1.0]
    """
    index = torch.as_tensor(list(positions), dtype=torch.long)

    def fn(row: torch.Tensor) -> torch.Tensor:  # [t, d]
        out = row.clone()
        out[index] = values.to(row.dtype)
        return out

    return fn


def trace(model: ChatModel, ids: Sequence[int], sites: Sequence[Site] = (), attention: bool = False) -> Trace:
    """Run `ids` once, keeping every block's input, the KV cache and `sites`.

    Args:
        model: the model.
        ids: prompt token ids (no padding).
        sites: extra sites to keep (e.g. `blocks.3.attn.hook_z`).
        attention: also keep the last position's attention pattern (eager attention only).

    Example:
        >>> t = trace(model, [1, 2, 3])  # doctest: +SKIP
        >>> t.resid.shape  # [n_layers + 1, pos, d_model]  # doctest: +SKIP
    """
    n = model.n_layers
    wanted = [Site(i, "hook_resid_pre") for i in range(n)] + [Site(n - 1, "hook_resid_post"), *sites]
    store: dict[Site, torch.Tensor] = {}

    def reader(site: Site) -> TensorFn:
        def fn(t: torch.Tensor) -> None:
            store[site] = t[0].detach().clone()  # [pos, d]

        return fn

    x = torch.tensor([list(ids)], dtype=torch.long, device=model.device)
    with torch.no_grad(), hooks_on(model, {s: reader(s) for s in dict.fromkeys(wanted)}):
        out = model.hf(x, use_cache=True, output_attentions=attention, logits_to_keep=1)
    resid = torch.stack([store[Site(i, "hook_resid_pre")] for i in range(n)] + [store[Site(n - 1, "hook_resid_post")]])
    cache = out.past_key_values
    last = None
    if attention:
        last = torch.stack([a[0, :, -1, :] for a in out.attentions]).detach()  # [n_layers, n_heads, pos]
    return Trace(
        ids=tuple(int(i) for i in ids),
        resid=resid,
        keys=tuple(layer.keys[0].detach() for layer in cache.layers),
        values=tuple(layer.values[0].detach() for layer in cache.layers),
        logits=out.logits[0, -1].detach(),
        sites={s: store[s] for s in sites},
        last_attention=last,
    )


class _PrefixKV:
    """Duck-typed cache for one block: the traced prefix, extended by the recomputed positions."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, batch: int) -> None:
        self.keys = keys.unsqueeze(0).expand(batch, -1, -1, -1)  # [batch, kv_heads, start, d_head]
        self.values = values.unsqueeze(0).expand(batch, -1, -1, -1)

    def update(self, key: torch.Tensor, value: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cat([self.keys, key], dim=-2), torch.cat([self.values, value], dim=-2)


def _mask(blocked: list[tuple[int, ...]], start: int, total: int, dtype: torch.dtype,
          device: torch.device) -> torch.Tensor:
    """Additive mask [batch, 1, t, total]: causal, minus each row's blocked keys for later queries."""
    q = torch.arange(start, total, device=device)[:, None]  # [t, 1]
    k = torch.arange(total, device=device)[None, :]  # [1, total]
    allowed = (k <= q).unsqueeze(0).repeat(len(blocked), 1, 1)  # [batch, t, total]
    for row, keys in enumerate(blocked):
        for j in keys:
            allowed[row, :, j] &= q[:, 0] <= j
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min).unsqueeze(1)


def _batch_fn(rows: list[tuple[int, RowFn]]) -> TensorFn:
    def fn(x: torch.Tensor) -> torch.Tensor:  # [batch, t, d]
        out = x.clone()
        for row, rowfn in rows:
            out[row] = rowfn(x[row])
        return out

    return fn


def rotary_of(model: ChatModel) -> torch.nn.Module:
    """The decoder's rotary embedding module, or NotImplementedError for other architectures."""
    base = module_at(model.hf, model.layout.layers.rsplit(".", 1)[0])
    rotary = getattr(base, "rotary_emb", None)
    if rotary is None:
        raise NotImplementedError(
            f"layer stepping needs a rotary llama-family decoder; {model.arch!r} has no rotary_emb"
        )
    return rotary


def rerun(model: ChatModel, base: Trace, edits: Sequence[Edit], start: int) -> torch.Tensor:
    """Logits at the last position [n_edits, vocab] for each edit applied to `base`.

    Args:
        model: the model that made `base`.
        base: the traced run.
        edits: one batch row each; an `Edit()` reproduces `base.logits`.
        start: first recomputed position; every edit must act at positions >= start.

    Example:
        >>> rerun(model, base, [Edit()], start=len(base.ids) - 1)  # doctest: +SKIP
    """
    n, total = model.n_layers, len(base.ids)
    if not 0 <= start < total:
        raise ValueError(f"start {start} outside 0..{total - 1}")
    for e in edits:
        if any(p < start for p in e.resid) or any(j >= total for keys in e.blocked.values() for j in keys):
            raise ValueError(f"an edit acts before start={start} or beyond the prompt")
    joins = [e.join(n) for e in edits]
    t, device, dtype = total - start, base.resid.device, base.resid.dtype
    positions = torch.arange(start, total, device=device)[None]  # [1, t]
    rotary = rotary_of(model) if min(joins, default=n) < n else None
    h = base.resid.new_zeros((0, t, model.d_model))  # [batch, t, d_model]
    active: list[int] = []

    def joining(i: int) -> torch.Tensor:
        rows = [k for k in range(len(edits)) if joins[k] == i]
        fresh = base.resid[i, start:].unsqueeze(0).repeat(len(rows), 1, 1)  # [rows, t, d_model]
        for r, k in enumerate(rows):
            if edits[k].resid_at == i:
                for p, value in edits[k].resid.items():
                    fresh[r, p - start] = value.to(dtype)
        active.extend(rows)
        return fresh

    with torch.no_grad():
        for i in range(min(joins, default=n), n):
            h = torch.cat([h, joining(i)])
            b = len(active)
            mask = _mask([tuple(edits[k].blocked.get(i, ())) for k in active], start, total, dtype, device)
            kv = _PrefixKV(base.keys[i][:, :start], base.values[i][:, :start], b) if start else None
            per_site: dict[Site, list[tuple[int, RowFn]]] = {}
            for row, k in enumerate(active):
                for site, rowfn in edits[k].sites.items():
                    if site.layer == i:
                        per_site.setdefault(site, []).append((row, rowfn))
            assert rotary is not None
            cos_sin = rotary(h, positions.expand(b, -1))
            with hooks_on(model, {site: _batch_fn(rows) for site, rows in per_site.items()}):
                out = model.blocks[i](h, attention_mask=mask, position_ids=positions.expand(b, -1),
                                      past_key_values=kv, position_embeddings=cos_sin)
            h = first_tensor(out)
        h = torch.cat([h, joining(n)])
        final = model.final_norm(h[:, -1])  # [batch, d_model]
        logits = model.unembed(final)  # [batch, vocab]
    order = torch.as_tensor(active, dtype=torch.long)
    return logits[torch.argsort(order)]
