"""Folded checkpoints for head-level steering: o_proj biases and scaled o_proj columns.

Two exact folds (equal to the hooks up to float rounding; tested):

- a vector at `blocks.L.hook_attn_out` (e.g. `heads_iti`, a head shift
  exported through o_proj) becomes layer L's o_proj bias `strength * v_L`.
  o_proj's output IS hook_attn_out, so the MLP of layer L reads it exactly as
  under the hook. For Llama the switch is `attention_bias=True`, which gives
  q/k/v/o_proj a bias in every layer: all are saved as zeros except o_proj of
  the steered layers. (`steering.export.folded` folds hook_resid_post vectors
  into down_proj and refuses this site.)
- a `HeadEdit` at strength s: each edited head's o_proj columns are multiplied
  by `1 + s (scale_h - 1)` (scaling, ablation: input-dependent, so no vector
  can carry it) and its shift adds `s W_O[:, h] @ shift_h` to o_proj's bias.

Both act at every position: an intervention measured with positions
"generated" or "prompt" is refused (re-measure it with "all"). A llama.cpp
control vector cannot carry either exactly: llama.cpp adds after the block
(hook_resid_post), where layer L's MLP no longer sees the change.

Example:
    >>> fold_attn_out_vector(model, heads_vector, "out/heads-folded", strength=-2.0)  # doctest: +SKIP
    >>> fold_head_edit(model, HeadEdit(9, 64, scales={(23, 0): 0.0}), "out/no-L23H0")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from transformers import PreTrainedModel

from interp.models.architectures import module_at
from interp.models.loading import ChatModel
from steering.artifacts.steering_vector import SteeringVector
from steering.export.folded import write_folder
from steering.export.info import ExportError, ExportInfo
from steering.methods.head_steer import Head, HeadEdit, head_shift_residual

#: architecture -> (config switch giving o_proj a bias, the attention modules it gives one)
BIAS_SWITCHES: dict[str, tuple[str, tuple[str, ...]]] = {
    "llama": ("attention_bias", ("q_proj", "k_proj", "v_proj", "o_proj")),
}


def _o_proj(hf: PreTrainedModel, model: ChatModel, layer: int) -> nn.Linear:
    linear = module_at(hf, f"{model.layout.layers}.{layer}.{model.layout.o_proj}")
    if not isinstance(linear, nn.Linear):
        raise ExportError(f"{model.arch}: o_proj is {type(linear).__name__}, not nn.Linear")
    return linear


def _set_biases(hf: PreTrainedModel, model: ChatModel, biases: dict[int, np.ndarray]) -> None:
    """Turn on the attention bias switch (zero biases) and write `biases[L]` into layer L's o_proj bias."""
    if not biases:
        return
    if model.arch not in BIAS_SWITCHES:
        raise ExportError(f"cannot fold an o_proj bias into {model.arch!r}: known for {', '.join(BIAS_SWITCHES)} only")
    switch, modules = BIAS_SWITCHES[model.arch]
    for layer in biases:
        bias = _o_proj(hf, model, layer).bias
        if bias is not None and bool(torch.any(bias != 0)):
            raise ExportError(f"layer {layer}'s o_proj already has a non-zero bias; export safetensors instead")
    if not bool(getattr(hf.config, switch, False)):
        attn = model.layout.o_proj.rsplit(".", 1)[0]
        for layer in range(model.n_layers):
            for name in modules:
                linear = module_at(hf, f"{model.layout.layers}.{layer}.{attn}.{name}")
                assert isinstance(linear, nn.Linear)
                linear.bias = nn.Parameter(torch.zeros(linear.out_features, dtype=linear.weight.dtype,
                                                       device=linear.weight.device))
        setattr(hf.config, switch, True)
    with torch.no_grad():
        for layer, delta in biases.items():
            bias = _o_proj(hf, model, layer).bias
            assert bias is not None
            bias.copy_(torch.from_numpy(np.asarray(delta)).to(bias.dtype))


def _scale_columns(hf: PreTrainedModel, model: ChatModel, factors: dict[Head, float]) -> None:
    with torch.no_grad():
        for (layer, head), factor in factors.items():
            weight = _o_proj(hf, model, layer).weight  # [d_model, n_heads*d_head]
            block = slice(head * model.d_head, (head + 1) * model.d_head)
            weight[:, block] = (weight[:, block].double() * factor).to(weight.dtype)


def _record(model: ChatModel, kind: str, strength: float, describe: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"format": "hf-folded", "kind": kind, "strength": strength, "positions": "all",
            "strength_folded": True, "base_model": model.provenance(), "fold": describe, **extra}


def fold_attn_out_vector(
    model: ChatModel, vector: SteeringVector, out: str | Path, strength: float,
    measured: dict[str, Any] | None = None, overwrite: bool = False,
) -> Path:
    """Write a copy of `model` whose o_proj biases add `strength * v_L` at `blocks.L.hook_attn_out`.

    Args:
        model: the model the vector was made on.
        vector: a vector with site_kind "hook_attn_out" measured with positions "all".
        out: the output folder (written atomically).
        strength: multiplier of the raw vector.
        measured: gain/loss at this operating point, if known.
        overwrite: replace an existing `out`.

    Example:
        >>> fold_attn_out_vector(model, v, "out/heads", strength=-2.0)  # doctest: +SKIP
    """
    if vector.site_kind != "hook_attn_out":
        raise ExportError(f"this fold adds at hook_attn_out (o_proj's bias); the vector acts on {vector.site_kind}")
    if vector.positions != "all":
        raise ExportError(f"a bias acts at every position; this vector was measured with positions="
                          f"{vector.positions!r}: re-measure it with 'all', or export safetensors")
    vector.check_compatible(model.d_model, model.weights_hash)
    hf = copy.deepcopy(model.hf)
    _set_biases(hf, model, (vector * strength).directions)
    info = ExportInfo.for_vector(vector, "hf-folded", "add", strength, measured)
    record = {**info.to_dict(), "base_model": model.provenance(),
              "fold": f"o_proj.bias of layers {vector.layers} = strength * v (attention_bias=True, other biases zero); "
                      "equals adding strength * v at blocks.L.hook_attn_out"}
    return write_folder(hf, model, out, record, overwrite)


def fold_head_edit(
    model: ChatModel, edit: HeadEdit, out: str | Path, strength: float = 1.0,
    meta: dict[str, Any] | None = None, overwrite: bool = False,
) -> Path:
    """Write a copy of `model` with `edit` at `strength` folded into o_proj (every position).

    Args:
        model: the model.
        edit: per-head scales and shifts.
        out: the output folder (written atomically).
        strength: as in `steer_heads` (1 = the edit as written).
        meta: free JSON recorded with the export (heads' ranking, measured gain...).
        overwrite: replace an existing `out`.

    Example:
        >>> fold_head_edit(model, HeadEdit(9, 64, scales={(23, 0): 0.0}), "out/no-L23H0")  # doctest: +SKIP
    """
    if (edit.n_heads, edit.d_head) != (model.n_heads, model.d_head):
        raise ExportError(f"edit is for {edit.n_heads} heads of {edit.d_head}; the model has "
                          f"{model.n_heads} of {model.d_head}")
    biases = {layer: float(strength) * v for layer, v in head_shift_residual(model, edit).items()}
    factors = {head: 1.0 + float(strength) * (scale - 1.0) for head, scale in edit.scales.items()}
    hf = copy.deepcopy(model.hf)
    _set_biases(hf, model, biases)
    _scale_columns(hf, model, factors)
    heads = {f"L{layer}H{head}": {"scale": edit.scales.get((layer, head), 1.0),
                                  "shift_norm": float(np.linalg.norm(edit.shifts.get((layer, head), 0.0)))}
             for layer, head in edit.heads}
    record = _record(model, "head_edit", float(strength),
                     "o_proj columns of each scaled head x (1 + strength (scale - 1)); shifts: o_proj.bias += "
                     "strength * W_O[:, h] @ shift_h (attention_bias=True, other biases zero)",
                     {"heads": heads, "meta": dict(meta or {})})
    return write_folder(hf, model, out, record, overwrite)
