"""Native safetensors export: exact round trip, the export record, refusals."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open

from steering.artifacts.steering_vector import SteeringVector
from steering.export import ExportError, ExportInfo, export_native, export_vector, load_native
from steering.export.info import EXPORT_FORMAT, NORM_BASIS, SITE_CONVENTION
from tests.steering.builders import random_vector


def test_round_trip_is_exact(tiny_model, tmp_path):
    vector = random_vector(tiny_model, layers=(0, 1, 3))
    measured = {"alignment_gain": 0.12, "kl": 0.03}
    path = export_native(vector, tmp_path / "v.safetensors", mode="add", strength=4.0, measured=measured)
    loaded, info = load_native(path)
    assert loaded == vector
    assert SteeringVector.load(path) == vector  # an export is also a plain vector file
    assert info == ExportInfo.for_vector(vector, "safetensors", "add", 4.0, measured)
    assert info.model_hash == tiny_model.weights_hash and info.arch == "llama"
    assert info.layer_range == (0, 3) and info.strength == 4.0 and not info.strength_folded
    assert info.site_convention == SITE_CONVENTION and info.norm_basis == NORM_BASIS
    assert info.resid_norms == {0: 3.5, 1: 3.5, 3: 3.5} and info.dataset_hash == "d" * 64
    assert info.measured == measured and info.positions == "all" and info.method == "random"
    with safe_open(str(path), framework="np") as f:
        record = json.loads(f.metadata()["workbench.export"])
    assert record["export_format"] == EXPORT_FORMAT and record["layer_range"] == [0, 3]


def test_selected_layers_and_ablate(tiny_model, tmp_path):
    vector = random_vector(tiny_model, layers=(1, 2, 3))
    path = export_vector("safetensors", vector.select([2]), tmp_path / "a.safetensors", mode="ablate")
    loaded, info = load_native(path)
    assert loaded == vector.select([2])
    assert info.mode == "ablate" and info.strength == 1.0 and info.layers == (2,)  # 1 = full ablation


def test_refusals(tiny_model, tmp_path):
    vector = random_vector(tiny_model)
    with pytest.raises(ExportError, match="clamp mode sets the projection"):
        export_native(vector, tmp_path / "c.safetensors", mode="clamp", strength=1.0)
    with pytest.raises(ExportError, match="needs a strength"):
        export_native(vector, tmp_path / "s.safetensors", mode="add")
    export_native(vector, tmp_path / "v.safetensors", strength=1.0)
    with pytest.raises(ExportError, match="exists; pass --overwrite"):
        export_vector("safetensors", vector, tmp_path / "v.safetensors", strength=1.0)
    with pytest.raises(ExportError, match="unknown format 'onnx'"):
        export_vector("onnx", vector, tmp_path / "v.onnx", strength=1.0)
    plain = vector.save(tmp_path / "plain.safetensors")
    with pytest.raises(ExportError, match="a plain vector file, not an export"):
        load_native(plain)
