"""GGUF control vectors: the file llama.cpp reads, every rule checked, bad files rejected."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter

from steering.export import ExportError, check_gguf_control_vector, export_gguf, read_gguf_control_vector
from steering.export.gguf_cvec import read_gguf_info
from steering.llamacpp.runtime import cvec_buffer
from tests.steering.builders import random_vector


def write_cvec(path, tensors, arch="controlvector", hint="llama", layer_count=None):  # type: ignore[no-untyped-def]
    """A control vector written by hand with GGUFWriter, the way repeng writes one."""
    writer = GGUFWriter(str(path), arch)
    if hint is not None:
        writer.add_string(f"{arch}.model_hint", hint)
    writer.add_uint32(f"{arch}.layer_count", len(tensors) if layer_count is None else layer_count)
    for name, value in tensors.items():
        writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_export_writes_what_llama_cpp_reads(tiny_model, tmp_path):
    vector = random_vector(tiny_model, layers=(1, 3))
    path = export_gguf(vector, tmp_path / "v.gguf", strength=2.5, model_hint="llama", n_layers=4)
    assert check_gguf_control_vector(path, n_layers=4, d_model=64) == []
    reader = GGUFReader(str(path))
    assert reader.get_field("general.architecture").contents() == "controlvector"
    assert reader.get_field("controlvector.model_hint").contents() == "llama"
    assert reader.get_field("controlvector.layer_count").contents() == 2
    assert reader.get_field("workbench.strength").contents() == 2.5
    assert sorted(t.name for t in reader.tensors) == ["direction.1", "direction.3"]
    back = read_gguf_control_vector(path)
    assert back.layers == [1, 3] and back.meta["strength_folded"] == 2.5
    for layer in (1, 3):  # strength folded in, bit for bit
        assert np.array_equal(back.directions[layer], (vector * 2.5).directions[layer])
    assert back.model_hash == vector.model_hash and back.arch == "llama"
    info = read_gguf_info(path)
    assert info is not None and info.strength == 2.5 and info.strength_folded and info.layers == (1, 3)


def test_repeng_style_file_imports(tmp_path):
    d = np.arange(8, dtype=np.float32)
    path = write_cvec(tmp_path / "repeng.gguf", {"direction.2": d, "direction.5": -d}, hint="mistral")
    assert check_gguf_control_vector(path) == []
    vector = read_gguf_control_vector(path)
    assert vector.layers == [2, 5] and vector.arch == "mistral" and vector.method == "gguf"
    assert np.array_equal(vector.directions[5], -d)
    assert read_gguf_info(path) is None


BAD_FILES = {
    "f16": ({"direction.1": np.ones(8, dtype=np.float16)}, {}, "direction.1: dtype F16, llama.cpp needs F32"),
    "layer0": ({"direction.0": np.ones(8, dtype=np.float32)}, {}, "direction.0: layer 0 < 1; llama.cpp rejects it"),
    "length": ({"direction.1": np.ones(7, dtype=np.float32)}, {}, "direction.1: length 7, expected d_model 8"),
    "count": ({"direction.1": np.ones(8, dtype=np.float32)}, {"layer_count": 3},
              "controlvector.layer_count is 3 but the file has 1 tensors"),
    "arch": ({"direction.1": np.ones(8, dtype=np.float32)}, {"arch": "llama"},
             "general.architecture is 'llama', expected 'controlvector'"),
    "hint": ({"direction.1": np.ones(8, dtype=np.float32)}, {"hint": None}, "controlvector.model_hint is missing"),
    "name": ({"steer.1": np.ones(8, dtype=np.float32)}, {}, "tensor 'steer.1': name is not direction.<N>"),
    "beyond": ({"direction.4": np.ones(8, dtype=np.float32)}, {}, "direction.4: layer 4 outside 1..3"),
    "2d": ({"direction.1": np.ones((2, 4), dtype=np.float32)}, {}, "direction.1: shape (4, 2) is not 1-D"),
}
NEEDS_MODEL_SHAPE = {"length", "beyond"}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_are_rejected(tmp_path, case):
    tensors, options, message = BAD_FILES[case]
    path = write_cvec(tmp_path / f"{case}.gguf", tensors, **options)
    problems = check_gguf_control_vector(path, n_layers=4, d_model=8)
    assert any(message in p for p in problems), problems
    if case in NEEDS_MODEL_SHAPE:  # without the model's shape the file is well formed
        assert check_gguf_control_vector(path) == []
    else:
        with pytest.raises(ExportError, match="not a valid control vector"):
            read_gguf_control_vector(path)


def test_not_a_gguf(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all")
    assert "not a readable GGUF file" in check_gguf_control_vector(junk)[0]


def test_refusals_and_warning(tiny_model, tmp_path):
    with pytest.raises(ExportError, match="llama.cpp rejects direction.0.*drops the whole file"):
        export_gguf(random_vector(tiny_model, layers=(0, 1)), tmp_path / "z.gguf", strength=1.0)
    assert not (tmp_path / "z.gguf").exists()
    with pytest.raises(ExportError, match="outside the model's 4 layers"):
        export_gguf(random_vector(tiny_model, layers=(1, 4)), tmp_path / "b.gguf", strength=1.0, n_layers=4)
    with pytest.warns(UserWarning, match="positions='generated'.*every position, prompt included.*positions='all'"):
        export_gguf(random_vector(tiny_model, positions="generated"), tmp_path / "g.gguf", strength=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_gguf(random_vector(tiny_model), tmp_path / "a.gguf", strength=1.0)
    # a vector measured behind a probe gate: llama.cpp cannot gate, so exporting says so (native keeps quiet)
    from dataclasses import replace

    from steering.artifacts.probe_gate import ProbeGate
    from steering.export import export_vector
    from steering.export.native import read_export_gate

    gate_file = ProbeGate(np.eye(tiny_model.d_model, dtype=np.float32)[0], 0.5, 0.0, layer=1,
                          per="last_prompt").save(tmp_path / "layer1.safetensors")
    gated = replace(random_vector(tiny_model), meta={"gate_files": {"1": str(gate_file)}})
    with pytest.warns(UserWarning, match="behind a probe gate.*llama.cpp applies it to every prompt"):
        export_vector("gguf", gated, tmp_path / "gated.gguf", strength=1.0)
    with warnings.catch_warnings():  # native keeps quiet: it carries the gate
        warnings.simplefilter("error")
        export_vector("safetensors", gated, tmp_path / "gated.safetensors", strength=1.0)
    carried = read_export_gate(tmp_path / "gated.safetensors")
    assert carried is not None and carried.layer == 1 and carried.bias == 0.5


def test_cvec_buffer_layout(tiny_model):
    vector = random_vector(tiny_model, layers=(1, 3))
    buffer, il_start, il_end = cvec_buffer(vector, n_layers=4)
    assert buffer.shape == (3 * 64,) and (il_start, il_end) == (1, 3)
    assert np.array_equal(buffer[:64], vector.directions[1])  # layer 1 first
    assert not buffer[64:128].any()
    assert np.array_equal(buffer[128:], vector.directions[3])
