"""Folded checkpoints: stock transformers loads them and they equal the hook-steered model."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM

from interp.models.loading import load_model
from steering.export import ExportError, export_vector, fold_checkpoint
from steering.export.compare import agreement, hf_logits, prompt_ids
from steering.export.folded import EXPORT_FILE, FOLDS, fold_spec, folded_info
from steering.export.reference import reference_hooks
from tests.steering.builders import build_tied_model, random_vector

PROMPT_COUNT = 4


@pytest.fixture(scope="module")
def tied_model(tiny_model_dir, tmp_path_factory):  # type: ignore[no-untyped-def]
    return load_model(str(build_tied_model(tiny_model_dir, tmp_path_factory.mktemp("tied") / "m")))


def fold_and_compare(model, vector, mode, strength, out):  # type: ignore[no-untyped-def]
    """Fold, load with stock transformers, and return (folded vs hooks, folded vs unsteered)."""
    before = {k: v.clone() for k, v in model.hf.state_dict().items()}
    folder = fold_checkpoint(model, vector, out, mode=mode, strength=strength)
    assert all(torch.equal(before[k], v) for k, v in model.hf.state_dict().items())  # the model is untouched
    folded = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    ids = prompt_ids(model)[:PROMPT_COUNT]
    ref = hf_logits(model, model.hf, ids, reference_hooks(model, vector, mode, strength))
    got = hf_logits(model, folded, ids, {})
    base = hf_logits(model, model.hf, ids, {})
    return folded, agreement(ref, got), agreement(base, got)


@pytest.mark.parametrize("which", ["untied", "tied"])
def test_add_fold_equals_hooks(tiny_model, tied_model, tmp_path, which):
    model = tiny_model if which == "untied" else tied_model
    vector = random_vector(model, layers=(1, 3), scale=2.0)
    folded, same, moved = fold_and_compare(model, vector, "add", 3.0, tmp_path / "add")
    assert same.max_logit_diff < 1e-4
    assert moved.max_logit_diff > 0.1  # the fold steers
    assert folded.config.mlp_bias is True
    layers = folded.model.layers
    assert torch.equal(layers[1].mlp.down_proj.bias, torch.from_numpy((vector * 3.0).directions[1]))
    assert not layers[0].mlp.down_proj.bias.any() and not layers[1].mlp.gate_proj.bias.any()
    assert (folded.lm_head.weight is folded.model.embed_tokens.weight) == (which == "tied")


@pytest.mark.parametrize("which, strength", [("untied", None), ("tied", None), ("untied", 0.5)])
def test_ablate_fold_equals_hooks(tiny_model, tied_model, tmp_path, which, strength):
    model = tiny_model if which == "untied" else tied_model
    vector = random_vector(model, layers=(2,))
    folded, same, moved = fold_and_compare(model, vector, "ablate", strength, tmp_path / "ablate")
    assert same.max_logit_diff < 1e-4
    assert moved.max_logit_diff > 1e-3
    assert folded.config.tie_word_embeddings is False
    assert folded.lm_head.weight is not folded.model.embed_tokens.weight
    assert torch.equal(folded.lm_head.weight, model.hf.lm_head.weight)  # unembedding kept as it was
    u = torch.from_numpy(vector.unit().directions[2]).double()
    left = 1.0 - (1.0 if strength is None else strength)  # the share of the projection that stays
    embed = model.hf.model.embed_tokens.weight.double() @ u
    assert torch.allclose(folded.model.embed_tokens.weight.double() @ u, left * embed, atol=1e-5)
    o_proj = u @ model.hf.model.layers[0].self_attn.o_proj.weight.double()
    assert torch.allclose(u @ folded.model.layers[0].self_attn.o_proj.weight.double(), left * o_proj, atol=1e-5)


def test_folder_contents_and_record(tiny_model, tmp_path):
    vector = random_vector(tiny_model, layers=(1,))
    folder = export_vector("hf-folded", vector, tmp_path / "f", strength=2.0, model=tiny_model,
                           measured={"gain": 0.2})
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", EXPORT_FILE} <= names
    record = json.loads((folder / EXPORT_FILE).read_text())
    assert record["base_model"]["weights_hash"] == tiny_model.weights_hash
    assert "mlp_bias=True" in record["fold"] and record["measured"] == {"gain": 0.2}
    info = folded_info(folder)
    assert info.strength == 2.0 and info.strength_folded and info.layers == (1,)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind
    with pytest.raises(ExportError, match="exists; pass --overwrite"):
        fold_checkpoint(tiny_model, vector, folder, strength=2.0)
    fold_checkpoint(tiny_model, vector, folder, strength=5.0, overwrite=True)
    assert folded_info(folder).strength == 5.0


def test_refusals(tiny_model, tmp_path):
    vector = random_vector(tiny_model, layers=(1, 2))
    out = tmp_path / "out"
    for positions in ("generated", "prompt"):
        with pytest.raises(ExportError, match=f"every position.*positions='{positions}'.*positions='all'"):
            fold_checkpoint(tiny_model, replace(vector, positions=positions), out, strength=1.0)
    with pytest.raises(ExportError, match="clamp mode sets the projection"):
        fold_checkpoint(tiny_model, vector, out, mode="clamp", strength=1.0)
    with pytest.raises(ExportError, match="ablation projects one direction.*--layers L"):
        fold_checkpoint(tiny_model, vector, out, mode="ablate")
    with pytest.raises(ExportError, match="needs a strength"):
        fold_checkpoint(tiny_model, vector, out, mode="add")
    with pytest.raises(ExportError, match="format hf-folded writes a copy of the model: pass --model"):
        export_vector("hf-folded", vector, out, strength=1.0)
    with pytest.raises(ExportError, match="cannot fold an added vector into mistral: .*bias=False"):
        fold_spec("mistral", "add")
    assert fold_spec("qwen2", "ablate") is FOLDS["qwen2"]
    with pytest.raises(ExportError, match="cannot fold into architecture 'gemma2'"):
        fold_spec("gemma2", "ablate")
    assert not out.exists()


def test_refuses_a_layer_with_its_own_bias(tiny_model, tmp_path):
    vector = random_vector(tiny_model, layers=(1,))
    folder = fold_checkpoint(tiny_model, vector, tmp_path / "once", strength=1.0)
    biased = load_model(str(folder))
    again = replace(vector, model_hash=biased.weights_hash)
    with pytest.raises(ExportError, match="layer 1's mlp.down_proj already has a non-zero bias"):
        fold_checkpoint(biased, again, tmp_path / "twice", strength=1.0)
    other_layer = random_vector(biased, layers=(2,))  # its bias is still zero: that folds
    folded = AutoModelForCausalLM.from_pretrained(str(fold_checkpoint(biased, other_layer, tmp_path / "l2", strength=1.0)))
    assert torch.equal(folded.model.layers[1].mlp.down_proj.bias, biased.hf.model.layers[1].mlp.down_proj.bias)
    assert folded.model.layers[2].mlp.down_proj.bias.any()


def test_hash_and_width_mismatch(tiny_model, tmp_path):
    other = replace(random_vector(tiny_model), model_hash="0" * 64)
    with pytest.raises(ValueError, match="pass force=True \\(--force\\)"):
        export_vector("hf-folded", other, tmp_path / "x", strength=1.0, model=tiny_model)
    export_vector("hf-folded", other, tmp_path / "x", strength=1.0, model=tiny_model, force=True)
    narrow = random_vector(load_model_like(tiny_model, d_model=32))
    with pytest.raises(ValueError, match="vector has d_model 32, the model has 64"):
        export_vector("hf-folded", narrow, tmp_path / "y", strength=1.0, model=tiny_model, force=True)


def load_model_like(model, d_model):  # type: ignore[no-untyped-def]
    """A stand-in with another width, for building a vector that does not fit."""
    return type("Shape", (), {"d_model": d_model, "weights_hash": model.weights_hash, "arch": model.arch})()
