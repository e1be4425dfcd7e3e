"""The residual stream at the last prompt position of each contrast, and a mean-difference direction.

Example:
    >>> last = collect_last(model, contrasts)  # doctest: +SKIP
    >>> direction = mean_diff_direction(last, layer=20)  # doctest: +SKIP
    >>> direction.shape  # [d_model]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from interp.analysis.contrasts import Contrast
from interp.analysis.stepping import Trace, trace
from interp.sites import Site

if TYPE_CHECKING:
    from interp.models.loading import ChatModel

CONDITIONS = ("clean", "corrupt")


@dataclass(frozen=True)
class LastResiduals:
    """Residuals at the last prompt position of the clean and corrupted runs.

    Args:
        pair_ids: one per contrast.
        resid: [pairs, 2, n_layers + 1, d_model]; axis 1 is (clean, corrupt);
            layer index i is the input of block i, index n_layers the final
            residual (before the final norm).
        correct: [pairs] first token of the correct answer.
        user: [pairs] first token of the user's answer.
    """

    pair_ids: tuple[str, ...]
    resid: torch.Tensor
    correct: np.ndarray
    user: np.ndarray

    def resid_post(self, layer: int) -> torch.Tensor:
        """`blocks.{layer}.hook_resid_post` at the last position [pairs, 2, d_model]."""
        return self.resid[:, :, layer + 1]

    @property
    def final(self) -> torch.Tensor:
        """The final residual [pairs, 2, d_model] (the norm's reference activations)."""
        return self.resid[:, :, -1]


TraceHook = Callable[[Contrast, Trace, Trace], None]


def collect_last(
    model: ChatModel,
    contrasts: Sequence[Contrast],
    on_traces: TraceHook | None = None,
    sites: Sequence[Site] = (),
    attention: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> LastResiduals:
    """Trace both prompts of every contrast and keep the last position's residuals.

    Args:
        model: the model.
        contrasts: the pairs.
        on_traces: optional callback `(contrast, clean_trace, corrupt_trace)`
            for callers that need more of each trace.
        sites: extra sites to trace (passed to `trace`).
        attention: trace the last position's attention pattern too.
        progress: optional callback `(done, total)` after each pair.

    Example:
        >>> collect_last(model, contrasts).resid.shape  # doctest: +SKIP
    """
    rows = []
    for i, c in enumerate(contrasts):
        clean = trace(model, c.clean, sites=sites, attention=attention)
        bad = trace(model, c.corrupt, sites=sites, attention=attention)
        if on_traces is not None:
            on_traces(c, clean, bad)
        if progress is not None:
            progress(i + 1, len(contrasts))
        rows.append(torch.stack([clean.resid[:, -1], bad.resid[:, -1]]))  # [2, n_layers + 1, d_model]
    return LastResiduals(
        pair_ids=tuple(c.pair_id for c in contrasts),
        resid=torch.stack(rows) if rows else torch.zeros(0, 2, model.n_layers + 1, model.d_model),
        correct=np.array([c.correct_token for c in contrasts], dtype=np.int64),
        user=np.array([c.user_token for c in contrasts], dtype=np.int64),
    )


def mean_diff_direction(last: LastResiduals, layer: int) -> np.ndarray:
    """Mean corrupted minus mean clean `blocks.{layer}.hook_resid_post` at the last position [d_model].

    Raw residual units (not normalised), like a mean-difference steering vector.

    Example:
        >>> mean_diff_direction(last, 3).shape  # doctest: +SKIP
        (64,)
    """
    if len(last.pair_ids) == 0:
        raise ValueError("no contrasts to compute a mean-difference direction from")
    at = last.resid_post(layer)  # [pairs, 2, d_model]
    return (at[:, 1].mean(0) - at[:, 0].mean(0)).numpy().astype(np.float32)


def unit(direction: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The direction as a float32 unit tensor [d_model]."""
    v = torch.as_tensor(np.asarray(direction), dtype=torch.float32)
    norm = float(v.norm())
    if norm == 0.0 or not np.isfinite(norm):
        raise ValueError("direction has zero or non-finite norm")
    return v / norm
