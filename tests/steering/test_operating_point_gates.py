"""An export from a sweep carries the gates of the layers it steers, and only those."""

import json
from pathlib import Path

import numpy as np
import pytest

from steering.artifacts.probe_gate import GATE_SUFFIX
from steering.artifacts.steering_vector import SteeringVector
from steering.sweep.report import operating_point_vector

D = 8


def _sweep(folder: Path, point: dict, always_gated: bool = False) -> Path:
    """A sweep folder by hand: a vector at layers 1, 2, 3, one gate file per layer, and `point` as the report's."""
    folder.mkdir(parents=True)
    vector = SteeringVector({layer: np.full(D, float(layer), np.float32) for layer in (1, 2, 3)}, method="learned",
                            d_model=D)
    vfile = vector.save(folder / "v.safetensors")
    gates = {str(layer): {"file": str(folder / f"gate{layer}.safetensors")} for layer in (1, 2, 3)}
    base = point["method"].removesuffix(GATE_SUFFIX)
    info = {"file": str(vfile), "family": "learned", **({"always_gated": True} if always_gated else {})}
    (folder / "sweep.json").write_text(json.dumps({"vectors": {base: info}, "gates": gates}))
    (folder / "report.json").write_text(json.dumps({"operating_point": point, "gain": "g", "loss": "l",
                                                    "budget": 0.02}))
    return folder


@pytest.mark.parametrize(("method", "layers", "always_gated"), [
    ("learned" + GATE_SUFFIX, "2", False),  # a post-hoc gated cell at one layer
    ("gated", "1,3", True),  # an always-gated multi-layer cell
])
def test_export_carries_only_the_gates_of_its_layers(tmp_path, method, layers, always_gated):
    point = {"method": method, "layer": int(layers.split(",")[0]), "layers": layers, "strength": -1.0,
             "positions": "generated", "mode": "add"}
    folder = _sweep(tmp_path / "sweep", point, always_gated)
    vector, strength, _ = operating_point_vector(folder)
    wanted = layers.split(",")
    assert strength == -1.0 and [str(layer) for layer in vector.layers] == wanted
    assert sorted(vector.meta["gate_files"]) == wanted
    assert vector.meta["gate_files"][wanted[0]].endswith(f"gate{wanted[0]}.safetensors")


def test_an_ungated_cell_carries_no_gate(tmp_path):
    point = {"method": "learned", "layer": 2, "layers": "2", "strength": -1.0, "positions": "generated",
             "mode": "add"}
    vector, _, _ = operating_point_vector(_sweep(tmp_path / "sweep", point))
    assert "gate_files" not in vector.meta and vector.layers == [2]
