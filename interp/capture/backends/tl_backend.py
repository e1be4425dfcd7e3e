"""TransformerLens backend: `TransformerBridge` over a private copy of the HF model.

The bridge rewires the HF module in place and forces eager attention, so it
gets its own deep copy; weights are not processed (`no_processing=True`), so
activations and logits equal the HF model's.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch

from interp.capture.backends.base import Batch
from interp.sites import Site

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


def boot_bridge(model: ChatModel) -> Any:
    """A TransformerBridge (compatibility names, unprocessed weights) over a copy of `model.hf`."""
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(
        model.tokenizer.name_or_path or model.spec,
        hf_model=copy.deepcopy(model.hf),
        tokenizer=model.tokenizer,
        device=str(model.device),
        dtype=next(model.hf.parameters()).dtype,
    )
    bridge.enable_compatibility_mode(no_processing=True, disable_warnings=True)
    return bridge


class TransformerLensBackend:
    name = "tl"

    def __init__(self) -> None:
        self._bridges: dict[int, Any] = {}

    def bridge(self, model: ChatModel) -> Any:
        key = id(model.hf)
        if key not in self._bridges:
            self._bridges[key] = boot_bridge(model)
        return self._bridges[key]

    def activations(self, model: ChatModel, batch: Batch, sites: list[Site]) -> dict[Site, torch.Tensor]:
        bridge = self.bridge(model)
        names = {site.name: site for site in sites}
        with torch.inference_mode():
            _, cache = bridge.run_with_cache(
                batch.input_ids,
                attention_mask=batch.attention_mask,
                names_filter=lambda name: name in names,
            )
        out: dict[Site, torch.Tensor] = {}
        for name, site in names.items():
            t = cache[name]
            out[site] = t.flatten(-2) if site.kind == "attn.hook_z" else t  # [batch, pos, d]
        return out
