"""Exports of the embedded SmolLM2 (tied embeddings, 30 layers): the fold and llama.cpp itself."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from transformers import AutoModelForCausalLM

from steering.artifacts.steering_vector import SteeringVector
from steering.export import export_gguf, fold_checkpoint, llamacpp, verify_export
from steering.export.compare import agreement, hf_logits, prompt_ids
from steering.export.reference import add_hooks, reference_hooks

pytestmark = pytest.mark.embedded


def mid_layer_vector(model, layers=range(5, 21), seed=0):  # type: ignore[no-untyped-def]
    """A seeded random direction at layers 5-20 with norm ~4 (the residual norm there is a few tens)."""
    rng = np.random.default_rng(seed)
    unit = rng.normal(size=model.d_model)
    unit /= np.linalg.norm(unit)
    return SteeringVector({layer: unit.astype(np.float32) for layer in layers}, method="random",
                          d_model=model.d_model, model_hash=model.weights_hash, arch=model.arch)


def test_add_fold_on_embedded_model(embedded_model, tmp_path):
    vector = mid_layer_vector(embedded_model, layers=(8, 12))
    folder = fold_checkpoint(embedded_model, vector, tmp_path / "smol", strength=4.0)
    folded = AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation="eager").eval()
    assert folded.config.tie_word_embeddings and folded.config.mlp_bias
    ids = prompt_ids(embedded_model)[:2]
    ref = hf_logits(embedded_model, embedded_model.hf, ids, reference_hooks(embedded_model, vector, "add", 4.0))
    got = hf_logits(embedded_model, folded, ids, {})
    base = hf_logits(embedded_model, embedded_model.hf, ids, {})
    assert agreement(ref, got).max_logit_diff < 1e-4
    assert agreement(base, got).mean_kl > 1e-4


def test_gguf_in_llama_cpp(embedded_model, tmp_path):
    pytest.importorskip("llama_cpp")
    vector = mid_layer_vector(embedded_model)
    path = export_gguf(vector, tmp_path / "v.gguf", strength=4.0, n_layers=embedded_model.n_layers)
    report = verify_export(path, embedded_model, source=vector, strength=4.0)
    assert report.passed, report.lines()
    steered = report.comparisons["llama.cpp steered vs HF hooks"]
    baseline = report.comparisons["llama.cpp unsteered vs HF unsteered (baseline)"]
    assert steered.top1_agreement > 0.8 and baseline.top1_agreement > 0.8
    hooks, cpp = report.effects["HF hooks"], report.effects["llama.cpp"]
    assert cpp.kl_from_unsteered == pytest.approx(hooks.kl_from_unsteered, rel=0.5)


def test_direction_index_matches_hook_layer_in_llama_cpp(embedded_model):
    """direction.L lands on blocks.L.hook_resid_post: llama.cpp matches the hook at L, not at L - 1 or L + 1."""
    pytest.importorskip("llama_cpp")
    layer = 10
    vector = mid_layer_vector(embedded_model, layers=(layer,)) * 60.0  # about half the residual norm there
    ids = prompt_ids(embedded_model)[:4]
    _, steered = llamacpp.llama_cpp_logits(llamacpp.model_gguf(embedded_model), ids, vector, embedded_model.n_layers)
    kl = {}
    for hook_layer in (layer - 1, layer, layer + 1):
        moved = replace(vector, directions={hook_layer: vector.directions[layer]})
        kl[hook_layer] = agreement(hf_logits(embedded_model, embedded_model.hf, ids, add_hooks(embedded_model, moved, 1.0)),
                                   steered).mean_kl
    assert kl[layer] < 0.05 and kl[layer] * 10 < min(kl[layer - 1], kl[layer + 1]), kl
