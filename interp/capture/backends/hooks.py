"""The default backend: forward hooks, and the forward stops after the last site."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from interp.capture.backends.base import Batch
from interp.models.hooks import execution_order, hooks_on
from interp.sites import Site

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


class _StopForward(Exception):
    """Raised by the last hook: nothing after it (later layers, lm_head) is needed."""


class HooksBackend:
    name = "hooks"

    def activations(self, model: ChatModel, batch: Batch, sites: list[Site]) -> dict[Site, torch.Tensor]:
        out: dict[Site, torch.Tensor] = {}
        last = execution_order(sites)[-1]

        def reader(site: Site):
            def fn(t: torch.Tensor) -> None:
                out[site] = t.detach()
                if site == last:
                    raise _StopForward

            return fn

        with torch.inference_mode(), hooks_on(model, {s: reader(s) for s in sites}):
            try:
                model.hf(
                    input_ids=batch.input_ids,
                    attention_mask=batch.attention_mask,
                    position_ids=batch.position_ids,
                    use_cache=False,
                )
            except _StopForward:
                pass
        return out
