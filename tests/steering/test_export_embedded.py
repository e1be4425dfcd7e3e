"""Exports of the embedded SmolLM2 (tied embeddings, 30 layers): the fold (llama.cpp itself: test_llamacpp)."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoModelForCausalLM

from steering.artifacts.steering_vector import SteeringVector
from steering.export import fold_checkpoint
from steering.export.compare import agreement, hf_logits, prompt_ids
from steering.export.reference import reference_hooks

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
