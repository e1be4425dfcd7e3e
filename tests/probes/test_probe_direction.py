"""Directions round-trip through one safetensors file exactly, and refuse the wrong model."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from safetensors import safe_open

from probes.direction import Direction, check_compatible, load_directions, save_directions


def _direction(layer: int = 3, dtype: type = np.float32, method: str = "logreg") -> Direction:
    rng = np.random.default_rng(layer)
    return Direction(
        vector=rng.normal(size=16).astype(dtype),
        layer=layer,
        site=f"blocks.{layer}.hook_resid_post",
        position="last_prompt",
        method=method,
        label_source="pressure",
        class_means=(-0.123456789012345, 1.0 / 3.0),
        class_stds=(0.5, float("nan")),
        model_hash="sha256:abc",
        dataset_hash="sha256:def",
        resid_norm=None if layer % 2 else 12.75,
        metadata={"C": 0.1, "n": 400, "nested": {"folds": [0, 1, 2]}, "note": "é unicode"},
    )


def test_round_trip_is_exact(tmp_path):
    dirs = {d.key: d for d in (_direction(1), _direction(2, np.float64), _direction(3, method="lda"))}
    path = save_directions(tmp_path / "dirs.safetensors", dirs)
    back = load_directions(path)
    assert list(back) == sorted(dirs)
    for key, d in dirs.items():
        got = back[key]
        assert got == d
        assert got.vector.dtype == d.vector.dtype
        assert got.vector.tobytes() == d.vector.tobytes()
        assert got.class_means == d.class_means  # floats survive JSON bit for bit
        assert np.isnan(got.class_stds[1])
        assert got.metadata == d.metadata
        assert got.resid_norm == d.resid_norm
    assert [p.name for p in tmp_path.iterdir()] == ["dirs.safetensors"]  # one file, no temp left


def test_file_holds_json_metadata(tmp_path):
    d = _direction()
    save_directions(tmp_path / "d.safetensors", {"x": d})
    with safe_open(str(tmp_path / "d.safetensors"), framework="np") as f:
        meta = f.metadata()
        assert list(f.keys()) == ["x"]
    info = json.loads(meta["directions"])["x"]
    assert info["site"] == "blocks.3.hook_resid_post"
    assert info["model_hash"] == "sha256:abc"


def test_equality_sees_the_vector_and_the_fields():
    d = _direction()
    assert d == _direction()
    assert d != dataclasses.replace(d, position="answer")
    assert d != dataclasses.replace(d, vector=d.vector * 2)


def test_replace_updates_unit_and_norm():
    d = Direction(np.array([3.0, 4.0]), 0, "blocks.0.hook_resid_post", "answer", "mean_diff", "contrast")
    assert d.norm == 5.0
    e = dataclasses.replace(d, vector=np.array([0.0, 2.0]))
    assert e.norm == 2.0
    assert e.unit.tolist() == [0.0, 1.0]
    assert d.vector.tolist() == [3.0, 4.0]
    with pytest.raises(ValueError):
        d.vector[0] = 1.0  # read-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.layer = 1  # type: ignore[misc]


def test_d_model_mismatch_is_refused_naming_both_sizes():
    d = _direction()
    check_compatible(d, 16)
    with pytest.raises(ValueError, match=r"d_model 16, the model/store has 576"):
        check_compatible(d, 576)
    with pytest.raises(ValueError, match="sha256:abc"):
        check_compatible(d, 16, model_hash="sha256:other")
    check_compatible(d, 16, model_hash="sha256:abc")


def test_invalid_directions_are_refused():
    with pytest.raises(ValueError, match="does not match site"):
        Direction(np.ones(3), 4, "blocks.5.hook_resid_post", "answer", "lda", "pressure")
    with pytest.raises(ValueError, match="non-zero"):
        Direction(np.zeros(3), 5, "blocks.5.hook_resid_post", "answer", "lda", "pressure")
    with pytest.raises(ValueError, match="JSON"):
        Direction(np.ones(3), 5, "blocks.5.hook_resid_post", "answer", "lda", "pressure", metadata={"x": object()})
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        Direction(np.ones(3), 5, "blocks.5.hook_resid_post", "answer", "lda", "pressure").project(np.ones((2, 4)))


def test_loading_a_foreign_file_is_refused(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.ones(3, np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a directions file"):
        load_directions(tmp_path / "other.safetensors")
