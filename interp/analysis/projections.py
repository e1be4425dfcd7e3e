"""Per-token projections of the residual stream on a direction, for any prompt (the app's playground).

Example:
    >>> tp = token_projections(model, "Question: What is 2 + 2?", np.ones(model.d_model))  # doctest: +SKIP
    >>> tp.values.shape  # [layers, tokens]  # doctest: +SKIP
    (30, 11)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from interp.analysis.dla import token_text
from interp.models.hooks import TensorFn, hooks_on
from interp.sites import Site, parse_site
from interp.tasks.example import Turn

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


@dataclass(frozen=True)
class TokenProjections:
    """Projection of `blocks.L.hook_resid_post` on a direction, per layer and token.

    Args:
        tokens: the prompt's tokens as text.
        ids: their ids.
        layers: the layers (rows of `values`).
        values: [layers, tokens] residual · direction (unit direction unless `unit=False`).
    """

    tokens: tuple[str, ...]
    ids: tuple[int, ...]
    layers: tuple[int, ...]
    values: np.ndarray

    def to_dict(self) -> dict[str, list[str] | list[int] | list[list[float]]]:
        return {"tokens": list(self.tokens), "ids": list(self.ids), "layers": list(self.layers),
                "values": self.values.tolist()}


def _prompt_ids(model: ChatModel, prompt: str | Sequence[Turn]) -> list[int]:
    text = prompt if isinstance(prompt, str) else model.render(tuple(prompt), add_generation_prompt=True)
    return list(model.tokenizer(text, add_special_tokens=False)["input_ids"])


def token_projections(
    model: ChatModel,
    prompt: str | Sequence[Turn],
    direction: np.ndarray | Mapping[int, np.ndarray],
    layers: Sequence[int] | None = None,
    unit: bool = True,
) -> TokenProjections:
    """Project every token's residual (after each chosen block) on a direction.

    Args:
        model: the model.
        prompt: raw text (tokenized as is), or chat turns (rendered with the
            chat template and the assistant's generation prompt).
        direction: one vector [d_model] used at every layer, or per-layer
            vectors (e.g. `SteeringVector.directions`), whose layers are used.
        layers: layers to report (default: all, or the mapping's layers);
            negative indices count from the end.
        unit: project on the normalised direction (residual units along it);
            False gives the raw dot product.

    Example:
        >>> tp = token_projections(model, [Turn("user", "Hi")], {3: v}, unit=True)  # doctest: +SKIP
        >>> tp.layers, len(tp.tokens) == tp.values.shape[1]  # doctest: +SKIP
        ((3,), True)
    """
    def layer_of(k: int) -> int:
        return parse_site(f"blocks.{k}.hook_resid_post", model.n_layers).layer

    if isinstance(direction, Mapping):
        vectors = {layer_of(k): np.asarray(v) for k, v in direction.items()}
        chosen = list(vectors) if layers is None else [layer_of(k) for k in layers]
        missing = [layer for layer in chosen if layer not in vectors]
        if missing:
            raise ValueError(f"direction has no vector for layer {missing[0]} (it has {sorted(vectors)})")
    else:
        chosen = list(range(model.n_layers)) if layers is None else [layer_of(k) for k in layers]
        vectors = {layer: np.asarray(direction) for layer in chosen}
    ids = _prompt_ids(model, prompt)
    if not ids:
        raise ValueError("the prompt has no tokens")
    store: dict[int, torch.Tensor] = {}

    def reader(layer: int) -> TensorFn:
        def fn(t: torch.Tensor) -> None:
            store[layer] = t[0].detach().float()  # [pos, d_model]

        return fn

    sites = {Site(layer, "hook_resid_post"): reader(layer) for layer in dict.fromkeys(chosen)}
    with torch.no_grad(), hooks_on(model, sites):
        model.hf(torch.tensor([ids], device=model.device), logits_to_keep=1)
    rows = []
    for layer in chosen:
        v = torch.as_tensor(vectors[layer], dtype=torch.float32)
        if v.shape != (model.d_model,):
            raise ValueError(f"layer {layer}: direction has shape {tuple(v.shape)}, expected ({model.d_model},)")
        if unit:
            v = v / v.norm().clamp_min(1e-12)
        rows.append((store[layer] @ v).numpy())
    return TokenProjections(
        tokens=tuple(token_text(model, i) for i in ids), ids=tuple(ids), layers=tuple(chosen),
        values=np.stack(rows).astype(np.float64),
    )
