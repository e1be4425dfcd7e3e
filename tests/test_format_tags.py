"""One format-tag scheme (`workbench.<kind>/<version>`); files written with the older tags still load."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from interp.store.tagged_file import format_tag, read_tagged
from probes.direction import Direction, load_directions, save_directions
from steering.artifacts.probe_gate import ProbeGate


def test_every_format_tag_follows_the_scheme(tmp_path) -> None:
    d = Direction(np.array([3.0, 4.0]), 0, "blocks.0.hook_resid_post", "answer", "mean_diff", "contrast")
    records, _ = read_tagged(save_directions(tmp_path / "d.safetensors", {d.key: d}), "directions")
    assert records["format"] == format_tag("directions", 1) == "workbench.directions/1"
    gate = ProbeGate(np.array([1.0, 0.0]), bias=0.0, threshold=0.0, layer=1, per="last_prompt")
    records, _ = read_tagged(gate.save(tmp_path / "g.safetensors"), "gate")
    assert records["workbench"]["format"] == "workbench.probe_gate/1"


def test_old_directions_file_loads(tmp_path) -> None:
    d = Direction(np.array([3.0, 4.0]), 0, "blocks.0.hook_resid_post", "answer", "mean_diff", "contrast")
    path = tmp_path / "old.safetensors"
    save_file({d.key: d.vector}, str(path), metadata={"format": "workbench.directions", "version": "1",
                                                      "directions": json.dumps({d.key: d.info()})})
    assert load_directions(path)[d.key] == d
    save_file({d.key: d.vector}, str(path), metadata={"format": "workbench.directions", "version": "2",
                                                      "directions": json.dumps({d.key: d.info()})})
    with pytest.raises(ValueError, match="version"):
        load_directions(path)


def test_old_gate_file_loads(tmp_path) -> None:
    gate = ProbeGate(np.array([1.0, 0.0]), bias=0.5, threshold=0.1, layer=1, per="last_prompt")
    path = gate.save(tmp_path / "g.safetensors")
    records, tensors = read_tagged(path, "gate")
    records["workbench"]["format"] = "workbench-probe-gate/1"
    save_file(tensors, str(path), metadata={k: json.dumps(v) for k, v in records.items()})
    assert ProbeGate.load(path).threshold == pytest.approx(0.1)
