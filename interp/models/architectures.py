"""Where the parts of a decoder live in each HF architecture: a small registry.

Each entry names module paths relative to the `*ForCausalLM` model. Unknown
model types fall back to a guesser that tries every known layout.

Example:
    >>> ARCHITECTURES["llama"].layers
    'model.layers'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn as nn


@dataclass(frozen=True)
class ArchLayout:
    """Module paths of one family; `attn`, `mlp`, `o_proj` are relative to a block."""

    layers: str
    attn: str
    mlp: str
    o_proj: str
    final_norm: str
    unembed: str
    embed: str


_LLAMA = ArchLayout(
    layers="model.layers",
    attn="self_attn",
    mlp="mlp",
    o_proj="self_attn.o_proj",
    final_norm="model.norm",
    unembed="lm_head",
    embed="model.embed_tokens",
)
# every llama-style family below shares _LLAMA; GPT-2 names each part differently (same fields, other paths)
_GPT2 = ArchLayout(
    layers="transformer.h",
    attn="attn",
    mlp="mlp",
    o_proj="attn.c_proj",
    final_norm="transformer.ln_f",
    unembed="lm_head",
    embed="transformer.wte",
)

ARCHITECTURES: dict[str, ArchLayout] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "gemma": _LLAMA,
    "gemma2": _LLAMA,
    "phi3": _LLAMA,
    "olmo2": _LLAMA,
    "gpt2": _GPT2,
}


def _get(module: nn.Module, path: str) -> nn.Module:
    for part in path.split("."):
        module = getattr(module, part)
    return module


def layout_for(model: nn.Module, model_type: str) -> ArchLayout:
    """The layout registered for `model_type`, else the first layout whose paths exist.

    Raises:
        ValueError: naming the model type and the layouts tried.
    """
    if model_type in ARCHITECTURES:
        return ARCHITECTURES[model_type]
    for candidate in dict.fromkeys(ARCHITECTURES.values()):
        try:
            layers: Any = _get(model, candidate.layers)  # a ModuleList
            block = layers[0]
            _get(block, candidate.attn), _get(block, candidate.mlp), _get(model, candidate.final_norm)
            return candidate
        except (AttributeError, IndexError, TypeError):
            continue
    tried = ", ".join(sorted({a.layers for a in ARCHITECTURES.values()}))
    raise ValueError(
        f"unknown architecture {model_type!r}: no decoder layers found at any of {tried}; "
        "add an ArchLayout to interp.models.architectures.ARCHITECTURES"
    )


def module_at(model: nn.Module, path: str) -> nn.Module:
    """The submodule at a dotted path (public for backends and steering)."""
    return _get(model, path)
