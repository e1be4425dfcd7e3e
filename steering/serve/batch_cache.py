"""A left-padded KV cache whose rows join and leave between decode steps (continuous batching).

Row r's real tokens fill the last `lengths[r]` columns of every layer's keys
and values `[batch, kv_heads, width, head_dim]`; the columns before them are
padding, masked out by `mask` `[batch, width]`. So every row keeps the
left-padded layout that `steering.interventions` reads (a row's real token
index is its column minus its leading pads), whichever rows share the batch.

- `join`: rows prefilled alone (batch-1 caches) are appended; the narrower side
  is padded on the left to the common width.
- `keep`: rows leave by index selection; columns that are padding in every
  remaining row are dropped.
- `step_inputs` / `advance`: the mask and position ids of one decode step, and
  the bookkeeping after it.

Only full-attention caches (`DynamicLayer`) are supported: a sliding-window
layer keeps a window, not a column per token.

Example:
    >>> cache = BatchCache()  # doctest: +SKIP
    >>> cache.join([out.past_key_values])  # a batch-1 prefill  # doctest: +SKIP
    >>> mask, positions = cache.step_inputs()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from transformers import DynamicCache


class BatchCache:
    """A batched KV cache of rows of different lengths (see the module docstring)."""

    def __init__(self) -> None:
        self.cache: DynamicCache | None = None
        self.mask = torch.zeros(0, 0, dtype=torch.long)  # [batch, width] 1 = real token
        self.lengths: list[int] = []  # real tokens of each row

    def clear(self) -> None:
        """Drop every row."""
        self.cache, self.mask, self.lengths = None, torch.zeros(0, 0, dtype=torch.long), []

    @property
    def batch(self) -> int:
        return len(self.lengths)

    @property
    def width(self) -> int:
        return int(self.mask.shape[1])

    def join(self, caches: Sequence[DynamicCache]) -> None:
        """Append rows prefilled alone: each a batch-1 cache holding exactly its real tokens.

        Raises:
            ValueError: a cache with a sliding-window layer or more than one row.
        """
        if not caches:
            return
        for c in caches:
            _check_full(c)
            if int(c.layers[0].keys.shape[0]) != 1:
                raise ValueError("join takes batch-1 caches (one prefilled row each)")
        widths = [int(c.layers[0].keys.shape[-2]) for c in caches]
        new_width = max([self.width, *widths])
        parts = ([self.cache] if self.cache is not None else []) + list(caches)
        pads = ([new_width - self.width] if self.cache is not None else []) + [new_width - w for w in widths]
        container = parts[0]
        for i, layer in enumerate(container.layers):
            layer.keys = torch.cat([_pad_left(p.layers[i].keys, n) for p, n in zip(parts, pads, strict=True)], dim=0)
            layer.values = torch.cat([_pad_left(p.layers[i].values, n) for p, n in zip(parts, pads, strict=True)],
                                     dim=0)
        masks = [F.pad(self.mask, (new_width - self.width, 0))] if self.cache is not None else []
        masks += [F.pad(torch.ones(1, w, dtype=torch.long), (new_width - w, 0)) for w in widths]
        self.cache = container
        self.mask = torch.cat(masks, dim=0)
        self.lengths = self.lengths + widths

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only `rows` (indices, in this order), then drop the columns that are padding in all of them."""
        if list(rows) == list(range(self.batch)):
            return
        if not rows:
            self.clear()
            return
        assert self.cache is not None
        index = torch.tensor(list(rows), dtype=torch.long)
        self.cache.batch_select_indices(index.to(self.cache.layers[0].keys.device))
        self.mask = self.mask[index]
        self.lengths = [self.lengths[r] for r in rows]
        drop = self.width - max(self.lengths)
        if drop > 0:
            for layer in self.cache.layers:
                layer.keys = layer.keys[:, :, drop:]
                layer.values = layer.values[:, :, drop:]
            self.mask = self.mask[:, drop:]

    def step_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The `attention_mask` `[batch, width + 1]` and `position_ids` `[batch, 1]` of the next decode step."""
        mask = torch.cat([self.mask, torch.ones(self.batch, 1, dtype=torch.long)], dim=1)
        return mask, torch.tensor(self.lengths, dtype=torch.long).unsqueeze(1)

    def advance(self, mask: torch.Tensor) -> None:
        """After a decode step whose inputs were `step_inputs()` (the model appended one column to the cache)."""
        self.mask = mask
        self.lengths = [n + 1 for n in self.lengths]


def _pad_left(t: torch.Tensor, n: int) -> torch.Tensor:
    """`[batch, heads, width, dim]` with `n` zero columns before the first."""
    return t if n == 0 else F.pad(t, (0, 0, n, 0))


def _check_full(cache: DynamicCache) -> None:
    for layer in cache.layers:
        if getattr(layer, "is_sliding", False) or not hasattr(layer, "keys"):
            raise ValueError("continuous batching needs a full-attention KV cache; this model has a "
                             f"{type(layer).__name__} layer")
