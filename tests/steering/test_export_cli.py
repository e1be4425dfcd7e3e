"""`workbench export` and `workbench verify-export` end to end on the tiny model."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from interp.sites import parse_layers
from steering.export import load_native, read_gguf_control_vector
from tests.steering.builders import random_vector
from workbench.cli import app

runner = CliRunner()


def invoke(*args):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def vector_file(tiny_model, tmp_path):  # type: ignore[no-untyped-def]
    return random_vector(tiny_model, layers=(0, 1, 2, 3)).save(tmp_path / "v.safetensors")


@pytest.mark.parametrize("fmt, out, mode, layers", [
    ("safetensors", "e.safetensors", "add", "1-3"),
    ("gguf", "e.gguf", "add", "1-3"),
    ("hf-folded", "folded", "add", "1-3"),
    ("hf-folded", "ablated", "ablate", "2"),
])
def test_export_then_verify(tiny_model, tiny_model_dir, vector_file, tmp_path, fmt, out, mode, layers):
    model = str(tiny_model_dir)
    result = invoke("export", "--vector", vector_file, "--format", fmt, "--strength", 2.0, "--layers", layers,
                    "--mode", mode, "--model", model, "--out", tmp_path / out)
    assert result.exit_code == 0, result.output
    assert f"{fmt} export" in result.output
    report = tmp_path / "report.json"
    result = invoke("verify-export", tmp_path / out, "--model", model, "--vector", vector_file, "--report", report)
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "max |dlogit|" in result.output
    data = json.loads(report.read_text())
    assert data["passed"] and data["format"] == fmt
    for comparison in data["comparisons"].values():
        assert comparison["max_logit_diff"] < 1e-4 and comparison["top1_agreement"] == 1.0
    effects = list(data["effects"].values())
    assert effects[0]["kl_from_unsteered"] > 0


def test_exported_content(tiny_model_dir, vector_file, tmp_path):
    invoke("export", "--vector", vector_file, "--format", "safetensors", "--strength", 3, "--layers", "2,3",
           "--out", tmp_path / "e.safetensors")
    vector, info = load_native(tmp_path / "e.safetensors")
    assert vector.layers == [2, 3] and info.strength == 3.0
    invoke("export", "--vector", vector_file, "--format", "gguf", "--strength", 3, "--layers", "1-3",
           "--out", tmp_path / "e.gguf")
    assert read_gguf_control_vector(tmp_path / "e.gguf").layers == [1, 2, 3]
    # a GGUF verifies without the source vector (the reference is the file itself)
    result = invoke("verify-export", tmp_path / "e.gguf", "--model", tiny_model_dir)
    assert result.exit_code == 0 and "reference is the file's own tensors" in result.output
    assert "has no GGUF file: llama.cpp itself was not run" in result.output  # the tiny model is a HF folder
    # --positions is llama.cpp's: a GGUF's option, checked before anything runs
    result = invoke("verify-export", tmp_path / "e.gguf", "--model", tiny_model_dir, "--positions", "answer")
    assert result.exit_code == 2 and "--positions 'answer'" in result.output
    result = invoke("verify-export", tmp_path / "e.safetensors", "--model", tiny_model_dir, "--positions", "all")
    assert result.exit_code == 2 and "--positions applies to gguf exports" in result.output


def test_refusals_are_one_line(tiny_model, tiny_model_dir, vector_file, tmp_path):
    model = str(tiny_model_dir)
    cases = [
        (["export", "--vector", vector_file, "--format", "gguf", "--strength", 1, "--layers", "0-2", "--out",
          tmp_path / "z.gguf"], "llama.cpp rejects direction.0"),
        (["export", "--vector", vector_file, "--format", "hf-folded", "--strength", 1, "--mode", "clamp",
          "--model", model, "--out", tmp_path / "c"], "clamp mode"),
        (["export", "--vector", vector_file, "--format", "hf-folded", "--strength", 1, "--out", tmp_path / "m"],
         "pass --model"),
        (["export", "--vector", tmp_path / "missing.safetensors", "--format", "gguf", "--strength", 1, "--out",
          tmp_path / "x.gguf"], "no such vector file"),
        (["export", "--vector", vector_file, "--format", "gguf", "--strength", 1, "--layers", "3-1", "--out",
          tmp_path / "x.gguf"], "runs backwards"),
        (["verify-export", tmp_path / "nothing.gguf", "--model", model], "no such file or folder"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output
        assert "Traceback" not in result.output and result.output.count("error:") == 1


def test_other_model_needs_force(tiny_model, tiny_model_dir, tmp_path):
    model = str(tiny_model_dir)
    foreign = replace(random_vector(tiny_model, layers=(1,)), model_hash="f" * 64).save(tmp_path / "f.safetensors")
    args = ["export", "--vector", foreign, "--format", "hf-folded", "--strength", 1, "--model", model,
            "--out", tmp_path / "folded"]
    result = invoke(*args)
    assert result.exit_code == 2 and "vector was made on model ffffffffffff" in result.output
    assert "--force" in result.output
    assert invoke(*args, "--force").exit_code == 0
    result = invoke("verify-export", tmp_path / "folded", "--model", model, "--vector", foreign)
    assert result.exit_code == 2 and "--force" in result.output
    assert invoke("verify-export", tmp_path / "folded", "--model", model, "--vector", foreign, "--force").exit_code == 0
    invoke("export", "--vector", foreign, "--format", "gguf", "--strength", 1, "--out", tmp_path / "f.gguf")
    result = invoke("verify-export", tmp_path / "f.gguf", "--model", model)
    assert result.exit_code == 2 and "export was made for model ffffffffffff" in result.output
    narrow = random_vector(type("M", (), {"d_model": 32, "weights_hash": "", "arch": "llama"})(), layers=(1,))
    narrow.save(tmp_path / "n.safetensors")
    result = invoke("export", "--vector", tmp_path / "n.safetensors", "--format", "gguf", "--strength", 1,
                    "--model", model, "--out", tmp_path / "n.gguf", "--force")
    assert result.exit_code == 2 and "vector has d_model 32, the model has 64" in result.output


def test_generated_positions_warn_for_gguf_and_refuse_to_fold(tiny_model, tiny_model_dir, tmp_path):
    generated = random_vector(tiny_model, layers=(1,), positions="generated").save(tmp_path / "g.safetensors")
    result = invoke("export", "--vector", generated, "--format", "gguf", "--strength", 1, "--out", tmp_path / "g.gguf")
    assert result.exit_code == 0
    assert "warning:" in result.output and "every position, prompt included" in result.output
    assert "positions='all'" in result.output
    result = invoke("export", "--vector", generated, "--format", "hf-folded", "--strength", 1, "--model",
                    tiny_model_dir, "--out", tmp_path / "g")
    assert result.exit_code == 2 and "positions='generated'" in result.output


def test_parse_layers():
    assert parse_layers("5-7,2") == [2, 5, 6, 7]
    with pytest.raises(ValueError, match="expected layers like"):
        parse_layers("a-b")
