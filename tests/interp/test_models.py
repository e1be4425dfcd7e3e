import hashlib
import json
import shutil

import pytest

from interp.models.loading import ModelLoadError, file_hash, load_model
from interp.tasks.example import Turn
from tests.conftest import build_tiny_model


def test_load_local_folder(tiny_model, tiny_model_dir):
    assert tiny_model.n_layers == 4
    assert tiny_model.d_model == 64
    assert len(tiny_model.blocks) == 4
    weights = tiny_model_dir / "model.safetensors"
    assert tiny_model.weights_hash == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert tiny_model.provenance()["arch"] == "llama"


def test_chat_template_and_fallback(tiny_model, tmp_path):
    text = tiny_model.render([Turn("user", "Hi")])
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    bare = load_model(str(build_tiny_model(tmp_path / "bare", n_layers=2, chat_template=None)))
    assert bare.template_kind == "llama2-fallback"
    rendered = bare.render([Turn("system", "Be brief."), Turn("user", "Hi"), Turn("assistant", "Hello"), Turn("user", "Sure?")])
    assert rendered == (
        "<|im_start|>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello <|im_end|>"
        "<|im_start|>[INST] Sure? [/INST]"
    )


def test_hub_id_resolves_from_hf_cache(tiny_model_dir, tmp_path, monkeypatch):
    """A hub id loads offline from the HF cache layout (models--org--name/snapshots/<rev>)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--acme--tiny-chat"
    rev = "0" * 40
    shutil.copytree(tiny_model_dir, repo / "snapshots" / rev)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    model = load_model("acme/tiny-chat")
    assert model.n_layers == 4
    with pytest.raises(ModelLoadError, match="tried .*local folder.*hub id 'acme/missing'"):
        load_model("acme/missing")


def test_clear_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="tried GGUF file .*no such file"):
        load_model(str(tmp_path / "nope.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path / "empty"))
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"model_type": "not-a-real-arch"}))
    with pytest.raises(ModelLoadError, match="tried local folder .*odd"):
        load_model(str(odd))
    with pytest.raises(ModelLoadError, match="dtype"):
        load_model("smollm2", dtype="int3")


def test_file_hash_of_folder_changes_with_weights(tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    before = file_hash(copy)
    with open(copy / "model.safetensors", "ab") as f:
        f.write(b"\0")
    assert file_hash(copy) != before


@pytest.mark.embedded
def test_embedded_gguf_loads(embedded_model):
    assert (embedded_model.n_layers, embedded_model.d_model) == (30, 576)
    assert embedded_model.template_kind == "model"
    assert embedded_model.source.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert len(embedded_model.weights_hash) == 64
