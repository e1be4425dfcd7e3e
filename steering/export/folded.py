"""Folded checkpoints: the steering baked into the weights of a normal HF model folder.

Stock `AutoModelForCausalLM.from_pretrained(folder)` loads the result, so any
server that serves the architecture serves the steered model. Two folds, both
exact (equal to the hooks in `steering.export.reference` up to float rounding):

- add: `strength * v_L` becomes the bias of layer L's MLP output projection
  (`down_proj`). For Llama the config switch is `mlp_bias=True`, which gives
  gate/up/down_proj a bias in every layer: all are saved as zeros except
  down_proj of the steered layers. down_proj's output is the last thing added
  to the stream inside block L, so its bias lands exactly on
  `blocks.L.hook_resid_post`. (`attention_bias=True` would put it on o_proj,
  whose output enters the stream before the MLP reads it: the MLP would see
  the vector, which the hook does not do, so that fold is not exact.)
- ablate: every weight that writes to the residual stream (the embedding, each
  o_proj and down_proj, and their biases if any) is orthogonalised against u,
  W <- W - s u u^T W (Arditi et al. 2024; s = strength, 1 = full ablation). A tied lm_head is untied first (saved
  as its own tensor) so that the unembedding is left as it was.

Refused, with the reason: a vector measured on positions other than "all" (a
bias applies at every position), clamp mode, an architecture without a known
MLP bias switch (for add), and a steered layer whose down_proj already has a
non-zero bias.

Example:
    >>> fold_checkpoint(model, vector, "out/steered", mode="add", strength=4.0)  # doctest: +SKIP
    >>> AutoModelForCausalLM.from_pretrained("out/steered")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from transformers import PreTrainedModel

from interp.models.architectures import module_at
from interp.models.loading import ChatModel
from interp.store.atomic import atomic_write_json
from steering.artifacts.steering_vector import SteeringVector
from steering.export.info import (
    ExportError,
    ExportInfo,
    ablation_direction,
    check_mode,
    check_residual_site,
    mode_strength,
)
from steering.export.reference import ablation_sites

EXPORT_FILE = "workbench_export.json"
MODES = ("add", "ablate")


@dataclass(frozen=True)
class FoldSpec:
    """How one architecture family takes a fold.

    Args:
        writers: modules of a block whose output is added to the residual stream.
        steer_module: the block module whose bias carries an additive vector.
        bias_switch: the config flag that gives `steer_module` a bias, None if none exists.
        bias_modules: every block module that flag gives a bias (saved as zeros).
        no_bias_reason: why add cannot fold, where `bias_switch` is None.
    """

    writers: tuple[str, ...]
    steer_module: str
    bias_switch: str | None
    bias_modules: tuple[str, ...]
    no_bias_reason: str = ""


_LLAMA = FoldSpec(
    writers=("self_attn.o_proj", "mlp.down_proj"), steer_module="mlp.down_proj", bias_switch="mlp_bias",
    bias_modules=("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
)
FOLDS: dict[str, FoldSpec] = {
    "llama": _LLAMA,
    "mistral": replace(_LLAMA, bias_switch=None, bias_modules=(), no_bias_reason=(
        "transformers builds Mistral's MLP with bias=False and has no config switch for it, so a stock loader "
        "would drop the bias")),
    "qwen2": replace(_LLAMA, bias_switch=None, bias_modules=(), no_bias_reason=(
        "transformers builds Qwen2's MLP and o_proj with bias=False and has no config switch for them, so a stock "
        "loader would drop the bias")),
}


def fold_spec(arch: str, mode: str) -> FoldSpec:
    """The fold registered for `arch`, checked against `mode`.

    Raises:
        ExportError: for an unknown architecture, or add on one without a bias switch.
    """
    if arch not in FOLDS:
        raise ExportError(
            f"cannot fold into architecture {arch!r}: folds are known for {', '.join(FOLDS)} only "
            "(others put norms or biases where a fold would not be exact); export gguf or safetensors instead"
        )
    spec = FOLDS[arch]
    if mode == "add" and spec.bias_switch is None:
        raise ExportError(f"cannot fold an added vector into {arch}: {spec.no_bias_reason}; mode ablate folds")
    return spec


def _block(hf: PreTrainedModel, model: ChatModel, layer: int, path: str) -> nn.Module:
    return module_at(hf, f"{model.layout.layers}.{layer}.{path}")


def fold_add(hf: PreTrainedModel, model: ChatModel, spec: FoldSpec, vector: SteeringVector, strength: float) -> None:
    """Turn on the MLP bias switch (zero biases) and put `strength * v_L` in down_proj's bias of layer L."""
    assert spec.bias_switch is not None
    scaled = vector * strength
    switched = bool(getattr(hf.config, spec.bias_switch, False))
    for layer in vector.layers:
        bias = _block(hf, model, layer, spec.steer_module).bias
        if bias is not None and bool(torch.any(bias != 0)):
            raise ExportError(
                f"layer {layer}'s {spec.steer_module} already has a non-zero bias: the fold would mix the model's "
                "own bias with the vector, so the export could not be inspected or undone; export gguf or safetensors"
            )
    if not switched:
        for layer in range(model.n_layers):
            for path in spec.bias_modules:
                linear = _block(hf, model, layer, path)
                assert isinstance(linear, nn.Linear)
                linear.bias = nn.Parameter(torch.zeros(linear.out_features, dtype=linear.weight.dtype))
        setattr(hf.config, spec.bias_switch, True)
    with torch.no_grad():
        for layer, delta in scaled.directions.items():
            bias = _block(hf, model, layer, spec.steer_module).bias
            assert bias is not None
            bias.copy_(torch.from_numpy(delta).to(bias.dtype))


def _untie(hf: PreTrainedModel) -> None:
    """Give lm_head its own copy of a tied embedding, and say so in the config."""
    out, emb = hf.get_output_embeddings(), hf.get_input_embeddings()
    if out is not None and out.weight is emb.weight:
        out.weight = nn.Parameter(emb.weight.detach().clone())
    hf.config.tie_word_embeddings = False


def _project_out(weight: torch.Tensor, u: torch.Tensor, axis: int, s: float) -> None:
    """In place: remove s times u from the `axis` of `weight` that lies in the residual stream (float64 maths)."""
    w = weight.detach().double()
    w = w - s * torch.outer(u, u @ w) if axis == 0 else w - s * torch.outer(w @ u, u)
    weight.data.copy_(w.to(weight.dtype))


def fold_ablate(hf: PreTrainedModel, model: ChatModel, spec: FoldSpec, vector: SteeringVector, s: float) -> None:
    """Orthogonalise every residual-stream write against the vector's unit direction (s = 1: fully)."""
    u = torch.from_numpy(ablation_direction(vector))
    _untie(hf)
    with torch.no_grad():
        _project_out(hf.get_input_embeddings().weight, u, axis=1, s=s)  # [vocab, d_model]
        for layer in range(model.n_layers):
            for path in spec.writers:
                linear = _block(hf, model, layer, path)
                assert isinstance(linear, nn.Linear)
                _project_out(linear.weight, u, axis=0, s=s)  # [d_model, d_in]
                if linear.bias is not None:
                    _project_out(linear.bias.unsqueeze(1), u, axis=0, s=s)


FOLDERS: dict[str, Callable[[PreTrainedModel, ChatModel, FoldSpec, SteeringVector, float], None]] = {
    "add": fold_add,
    "ablate": fold_ablate,
}


def write_folder(
    hf: PreTrainedModel, model: ChatModel, out: str | Path, record: dict[str, Any], overwrite: bool = False
) -> Path:
    """Save model, tokenizer and `workbench_export.json` to a temp folder, then rename it into place.

    Raises:
        ExportError: when `out` exists and `overwrite` is False.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        hf.save_pretrained(tmp)
        model.tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / EXPORT_FILE, record)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(out, old)
            os.replace(tmp, out)
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def fold_checkpoint(
    model: ChatModel, vector: SteeringVector, out: str | Path, mode: str = "add", strength: float | None = None,
    measured: dict[str, Any] | None = None, overwrite: bool = False,
) -> Path:
    """Write a folded copy of `model` to the folder `out`; `model` itself is left unchanged.

    Args:
        model: the model the vector was made on (check it with `vector.check_compatible` first).
        vector: raw vector at `hook_resid_post` (add), or one layer whose direction is ablated.
        out: the output folder, written atomically.
        mode: "add" or "ablate".
        strength: multiplier of the vector (add, required) or of the removed part (ablate, default 1).
        measured: gain/loss measured at this operating point, if known.
        overwrite: replace an existing `out`.

    Raises:
        ExportError: whenever the fold would not be exact (see the module docstring).

    Example:
        >>> fold_checkpoint(model, vector.select([12]), "out/ablated", mode="ablate")  # doctest: +SKIP
    """
    check_mode(mode, "hf-folded", MODES)
    if vector.positions != "all":
        raise ExportError(
            f"a folded bias or weight edit acts at every position, but this vector was measured with "
            f"positions={vector.positions!r}: re-measure it with positions='all', or export safetensors"
        )
    spec = fold_spec(model.arch, mode)
    s = mode_strength(mode, strength)
    if mode == "add":
        check_residual_site(vector, "hf-folded")
    else:
        ablation_direction(vector)  # refuse before copying the model
    hf = copy.deepcopy(model.hf)
    FOLDERS[mode](hf, model, spec, vector, s)
    info = ExportInfo.for_vector(vector, "hf-folded", mode, s, measured)
    record = {
        **info.to_dict(),
        "base_model": model.provenance(),
        "fold": _describe(mode, spec, vector),
        "vector_norms": {str(k): v for k, v in vector.norms().items()},
    }
    return write_folder(hf, model, out, record, overwrite)


def _describe(mode: str, spec: FoldSpec, vector: SteeringVector) -> str:
    if mode == "add":
        return (f"config.{spec.bias_switch}=True; {spec.steer_module}.bias of layers {vector.layers} = strength * v, "
                "all other new biases zero; equals adding strength * v at blocks.L.hook_resid_post")
    return (f"embedding and {', '.join(spec.writers)} of every layer: W <- W - s u u^T W (lm_head untied); "
            "equals projecting u out of the embedding output and every attention and MLP output "
            f"({' '.join(sorted({s.kind for s in ablation_sites(1)}))} hooks)")


def read_fold_record(folder: str | Path) -> dict[str, Any]:
    """The `workbench_export.json` of a folded checkpoint.

    Raises:
        ExportError: when the folder has none.
    """
    path = Path(folder) / EXPORT_FILE
    if not path.is_file():
        raise ExportError(f"{folder}: no {EXPORT_FILE}; not a folded workbench export")
    return dict(json.loads(path.read_text()))


def folded_info(folder: str | Path) -> ExportInfo:
    """The ExportInfo of a folded checkpoint."""
    record = read_fold_record(folder)
    return ExportInfo.from_dict({k: v for k, v in record.items() if k not in ("base_model", "fold", "vector_norms")})

