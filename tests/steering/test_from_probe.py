"""steering.methods.from_probe: a probe Direction steers exactly like the SteeringVector made from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probes.direction import Direction
from steering.apply.steer_hooks import steer
from steering.artifacts.steering_vector import SteeringVector
from steering.methods.from_probe import vector_from_direction, vector_from_directions


def _direction(layer: int, d: int = 64, seed: int = 0, site_kind: str = "hook_resid_post") -> Direction:
    rng = np.random.default_rng(seed)
    return Direction(rng.normal(size=d).astype(np.float32), layer, f"blocks.{layer}.{site_kind}", "last_prompt",
                     "mean_diff", "user_vs_third_party", class_means=(0.1, 0.9), model_hash="abc",
                     dataset_hash="def", resid_norm=20.0)


def test_the_vector_is_the_raw_direction_at_its_layer_with_its_provenance(tmp_path):
    d = _direction(2)
    v = vector_from_direction(d, arch="llama")
    assert v.layers == [2] and np.array_equal(v.directions[2], d.vector)
    assert v.directions[2].flags.writeable  # a copy: torch.as_tensor never sees a read-only array
    assert v.norms()[2] == pytest.approx(d.norm, rel=1e-6)
    assert v.relative_norms()[2] == pytest.approx(d.norm / 20.0, rel=1e-6)
    assert (v.model_hash, v.dataset_hash, v.arch, v.method, v.site_kind) == ("abc", "def", "llama", "mean_diff",
                                                                             "hook_resid_post")
    assert v.meta["direction"] == d.key and v.meta["label_source"] == "user_vs_third_party"
    assert SteeringVector.load(v.save(tmp_path / "v.safetensors")) == v


def test_several_directions_make_one_vector_and_clashes_are_refused():
    v = vector_from_directions({f"k{layer}": _direction(layer, seed=layer) for layer in (1, 3)})
    assert v.layers == [1, 3] and set(v.resid_norms) == {1, 3}
    with pytest.raises(ValueError, match="several directions at one layer"):
        vector_from_directions({"a": _direction(1, seed=0), "b": _direction(1, seed=1)})
    with pytest.raises(ValueError, match="steering acts on"):
        vector_from_direction(Direction(np.ones(64), 1, "blocks.1.attn.hook_z", "answer", "lda", "pressure"))


def test_it_steers_exactly_like_the_same_raw_vector_built_by_hand(tiny_model):
    d = _direction(1, d=tiny_model.d_model)
    by_hand = SteeringVector({1: np.array(d.vector)}, method="mean_diff", d_model=tiny_model.d_model)
    ids = tiny_model.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        base = tiny_model.hf(ids).logits
        with steer(tiny_model, vector_from_direction(d), -2.0, layers=[1], force=True):
            steered = tiny_model.hf(ids).logits
        with steer(tiny_model, by_hand, -2.0, layers=[1]):
            reference = tiny_model.hf(ids).logits
    assert torch.equal(steered, reference)
    assert not torch.allclose(steered, base)
