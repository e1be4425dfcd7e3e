"""The memory estimate (from the config alone) and the refusal before loading."""

import pytest
from transformers import LlamaConfig
from typer.testing import CliRunner

import interp.models.memory as memory
from interp.models.loading import ModelLoadError
from interp.models.memory import LoadRequest, MemoryCheckError, available_memory, check_memory, estimate_memory
from interp.tasks.example import write_examples
from tests.conftest import make_examples
from workbench.cli import app

LLAMA_7B = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096)


def test_7b_estimates_13_5_gb_in_bf16_and_27_gb_in_fp32():
    bf16, fp32, fp16 = (estimate_memory(LLAMA_7B, d) for d in ("bfloat16", "float32", "float16"))
    assert bf16.n_params == 6_738_415_616  # Llama-2-7B's published count
    assert round(bf16.weight_bytes / 1e9, 1) == 13.5 and round(fp32.weight_bytes / 1e9, 1) == 27.0
    assert fp16.weight_bytes == bf16.weight_bytes == fp32.weight_bytes // 2
    assert bf16.total_bytes == int(bf16.weight_bytes * 1.2)
    assert "6.74 B parameters x 2 bytes in bfloat16 = 13.5 GB" in bf16.describe()


def test_tied_embeddings_count_once(tiny_model):
    tied = LlamaConfig(**{**tiny_model.hf.config.to_dict(), "tie_word_embeddings": True})
    untied = estimate_memory(tiny_model.hf.config, "float32").n_params
    assert untied == sum(p.numel() for p in tiny_model.hf.parameters())
    assert estimate_memory(tied, "float32").n_params == untied - tiny_model.hf.config.vocab_size * 64


def _pretend(monkeypatch, free_gb: float) -> None:
    monkeypatch.setattr(memory, "model_config", lambda spec: LLAMA_7B)
    monkeypatch.setattr(memory, "available_memory",
                        lambda device="cpu", device_map=None: (int(free_gb * 1e9), f"cpu RAM ({free_gb:.1f} GB free)"))


def test_refusal_names_the_numbers_and_the_ways_out(monkeypatch):
    _pretend(monkeypatch, 20.0)
    with pytest.raises(MemoryCheckError) as err:
        check_memory("meta-llama/Llama-2-7b-hf", "float32")
    message = str(err.value)
    assert "model 'meta-llama/Llama-2-7b-hf' needs about 32.3 GB (6.74 B parameters x 4 bytes in float32" in message
    assert "but cpu RAM (20.0 GB free) has only 20.0 GB" in message
    for way_out in ("--dtype bfloat16 (about 16.2 GB)", "--device-map auto", "--backend nnsight --remote",
                    "--ignore-memory-check"):
        assert way_out in message
    assert check_memory("meta-llama/Llama-2-7b-hf", "bfloat16").total_bytes < 20e9  # fits
    with pytest.raises(MemoryCheckError, match=r"x 2 copies = 32\.3 GB"):  # two local Ray workers
        check_memory("meta-llama/Llama-2-7b-hf", "bfloat16", copies=2)
    assert LoadRequest("meta-llama/Llama-2-7b-hf", memory_check=False).check() is None


def test_unreadable_config_defers_to_load_model(tmp_path):
    assert check_memory(str(tmp_path / "nothing-here")) is None


def test_available_memory():
    free, where = available_memory("cpu")
    assert free > 0 and where.startswith("cpu RAM")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            available_memory("cuda:0")


def test_cache_command_refuses_before_loading_and_can_be_overridden(tiny_model_dir, tmp_path, monkeypatch):
    data = tmp_path / "d.jsonl"
    write_examples(make_examples(4), data)
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu", device_map=None: (1000, "cpu RAM (0.0 GB free)"))
    args = ["cache", "--run", "r", "--data", str(data), "--model", str(tiny_model_dir), "--artifacts",
            str(tmp_path / "art"), "--sites", "blocks.1.hook_resid_post"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "needs about" in refused.output and "--ignore-memory-check" in refused.output
    assert not (tmp_path / "art" / "r" / "activations").exists()
    forced = CliRunner().invoke(app, [*args, "--ignore-memory-check"])
    assert forced.exit_code == 0, forced.output


def test_dtype_and_device_map_reach_the_model(tiny_model_dir, tmp_path):
    """`--dtype bfloat16 --device-map auto` (accelerate; all on the CPU here) caches through the same path."""
    data = tmp_path / "d.jsonl"
    write_examples(make_examples(4), data)
    result = CliRunner().invoke(app, ["cache", "--run", "r", "--data", str(data), "--model", str(tiny_model_dir),
                                      "--artifacts", str(tmp_path / "art"), "--sites", "blocks.1.hook_resid_post",
                                      "--dtype", "bfloat16", "--device-map", "auto"])
    assert result.exit_code == 0, result.output
    from interp.store.activations import ActivationStore

    store = ActivationStore(tmp_path / "art" / "r" / "activations")
    assert store.model["dtype"] == "bfloat16"
    assert store.get("blocks.1.hook_resid_post", "last_prompt").shape == (4, 64)


def test_recorded_config_knows_a_dequantised_gguf_and_the_embedded_model_by_hash(tmp_path, monkeypatch):
    from interp.models.loading import embedded_gguf_path, file_hash

    embedded = file_hash(embedded_gguf_path())
    assert memory.recorded_config(embedded).num_hidden_layers == 30  # the embedded SmolLM2, whatever the cache holds
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    digest = "ab" * 32
    assert memory.recorded_config(digest) is None and memory.recorded_config("") is None
    folder = tmp_path / "models" / digest[:16]  # what load_model writes when it dequantises a GGUF
    folder.mkdir(parents=True)
    LlamaConfig(num_hidden_layers=7).save_pretrained(folder)
    (folder / "workbench_source.json").write_text(f'{{"gguf": "m.gguf", "sha256": "{digest}"}}')
    assert memory.recorded_config(digest).num_hidden_layers == 7
    assert memory.recorded_config(digest[:16] + "0" * 48) is None  # the folder is keyed by a prefix: the full hash decides
