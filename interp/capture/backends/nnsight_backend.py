"""nnsight backend: trace the in-memory HF model and save each site explicitly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from interp.capture.backends.base import Batch
from interp.models.hooks import execution_order, hook_point
from interp.sites import Site

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


def _envoy_at(root: Any, path: str) -> Any:
    node = root
    for part in path.split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return node


class NnsightBackend:
    name = "nnsight"
    remote: bool | str = False  # True: run each trace on NDIF (see interp.capture.backends.remote)

    def __init__(self) -> None:
        self._wrapped: dict[int, Any] = {}

    def wrap(self, model: ChatModel) -> Any:
        """The nnsight `TransformersModel` over `model.hf` (no copy; nnsight edits nothing)."""
        key = id(model.hf)
        if key not in self._wrapped:
            from nnsight.modeling.transformers import TransformersModel

            self._wrapped[key] = TransformersModel(model.hf, tokenizer=model.tokenizer)
        return self._wrapped[key]

    def activations(self, model: ChatModel, batch: Batch, sites: list[Site]) -> dict[Site, torch.Tensor]:
        nn_model = self.wrap(model)
        # resolved before the trace, so the traced block holds envoys and strings only (a remote
        # trace serialises what the block references; the ChatModel and its modules stay here)
        points = [(site, _envoy_at(nn_model, point.path), point.reads)
                  for site, point in ((s, hook_point(model, s)) for s in execution_order(sites))]
        saved: dict[Site, Any] = {}
        with torch.inference_mode():
            with nn_model.trace(
                batch.input_ids,
                attention_mask=batch.attention_mask,
                position_ids=batch.position_ids,
                use_cache=False,
                remote=self.remote,
            ):
                for site, envoy, reads in points:
                    value = envoy.output if reads == "output" else envoy.input
                    if site.kind == "hook_attn_out":
                        value = value[0]
                    saved[site] = value.save()
        return {site: torch.as_tensor(saved[site]) for site in sites}
