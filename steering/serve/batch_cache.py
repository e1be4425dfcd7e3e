"""A left-padded KV cache whose rows join and leave between decode steps (continuous batching).

Row r's real tokens fill the last `lengths[r]` columns of every layer's keys
and values `[batch, kv_heads, width, head_dim]`; the columns before them are
padding, masked out by `mask` `[batch, width]`. So every row keeps the
left-padded layout that `steering.interventions` reads (a row's real token
index is its column minus its leading pads), whichever rows share the batch.

- `join`: the rows of a prefill (a right-padded batch) are appended, each
  left-padded to the common width (the running rows too, if a new one is longer).
- `keep`: rows leave by index selection; columns that are padding in every
  remaining row are dropped.
- `step_inputs` / `advance`: the mask and position ids of one decode step, and
  the bookkeeping after it.

Only full-attention caches (`DynamicLayer`) are supported: a sliding-window
layer keeps a window, not a column per token.

Example:
    >>> cache = BatchCache()  # doctest: +SKIP
    >>> cache.join(out.past_key_values, widths=[31, 40])  # a prefill of two rows  # doctest: +SKIP
    >>> mask, positions = cache.step_inputs()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
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

    def join(self, cache: DynamicCache, widths: Sequence[int]) -> None:
        """Append the rows of a prefill: row r of `cache` holds its real tokens in its first `widths[r]` columns
        (a right-padded batch; the columns after them are dropped).

        Raises:
            ValueError: a cache with a sliding-window layer, or widths that do not match its rows.
        """
        _check_full(cache)
        first = cache.layers[0].keys
        if len(widths) != int(first.shape[0]) or max(widths) > int(first.shape[-2]):
            raise ValueError(f"{len(widths)} widths for a cache of {tuple(first.shape)}")
        old, new_width = self.batch, max([self.width, *widths])
        if self.cache is None:
            self.cache = cache
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = self._merged(mine.keys if old else None, theirs.keys, widths, new_width)
            mine.values = self._merged(mine.values if old else None, theirs.values, widths, new_width)
        mask = torch.zeros(old + len(widths), new_width, dtype=torch.long)
        mask[:old, new_width - self.width:] = self.mask
        for r, w in enumerate(widths):
            mask[old + r, new_width - w:] = 1
        self.mask = mask
        self.lengths = self.lengths + [int(w) for w in widths]

    def _merged(self, current: torch.Tensor | None, new: torch.Tensor, widths: Sequence[int],
                width: int) -> torch.Tensor:
        """`[old + new rows, heads, width, dim]`: the current rows shifted right, each new row left-padded."""
        old = 0 if current is None else int(current.shape[0])
        out = new.new_zeros(old + len(widths), new.shape[1], width, new.shape[3])
        if current is not None:
            out[:old, :, width - current.shape[2]:] = current
        for r, w in enumerate(widths):
            out[old + r, :, width - w:] = new[r, :, :w]
        return out

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


def _check_full(cache: DynamicCache) -> None:
    for layer in cache.layers:
        if getattr(layer, "is_sliding", False) or not hasattr(layer, "keys"):
            raise ValueError("continuous batching needs a full-attention KV cache; this model has a "
                             f"{type(layer).__name__} layer")
