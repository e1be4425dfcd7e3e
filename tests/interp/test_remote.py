"""`--backend nnsight --remote`: the refusals (no network here) and nnsight's in-process simulation of a remote run."""

import numpy as np
import pytest
from typer.testing import CliRunner

from interp.capture.backends import make_backend
from interp.capture.backends.remote import RemoteNnsightBackend, RemoteUnavailableError, check_remote, load_remote_model
from interp.capture.collect import CaptureConfig, compute_shard, resolve_config, validate
from interp.capture.positions import parse_positions
from interp.store.writer import ShardRange
from interp.tasks.example import write_examples
from tests.conftest import make_examples
from workbench.cli import app


@pytest.fixture
def no_key(monkeypatch):
    from nnsight import CONFIG

    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)


@pytest.mark.parametrize("spec, what", [("smollm2", "the embedded model"), ("x/y.gguf", "a local file or folder"),
                                        ("not a hub id", "not a hub id")])
def test_only_hub_ids_run_remotely(spec, what, no_key):
    with pytest.raises(RemoteUnavailableError, match=f"--remote runs hub models NDIF hosts.*is {what}"):
        check_remote(spec)


def test_a_local_folder_is_refused(tiny_model_dir):
    with pytest.raises(RemoteUnavailableError, match="a local file or folder"):
        load_remote_model(str(tiny_model_dir))


def test_no_api_key_is_refused_before_any_download(no_key, monkeypatch):
    with pytest.raises(RemoteUnavailableError, match="needs an NDIF API key .* `export NDIF_API_KEY"):
        load_remote_model("meta-llama/Llama-3.1-70B-Instruct")
    monkeypatch.setenv("NDIF_API_KEY", "test-key")
    check_remote("meta-llama/Llama-3.1-70B-Instruct")  # a key and a hub id: accepted


def test_cache_command_refusals(tmp_path, no_key):
    data = tmp_path / "d.jsonl"
    write_examples(make_examples(2), data)
    base = ["cache", "--run", "r", "--data", str(data), "--artifacts", str(tmp_path / "art")]
    runner = CliRunner()
    hooks = runner.invoke(app, [*base, "--remote", "--model", "meta-llama/Llama-3.1-70B-Instruct"])
    assert hooks.exit_code == 2 and "add --backend nnsight" in hooks.output
    embedded = runner.invoke(app, [*base, "--backend", "nnsight", "--remote"])
    assert embedded.exit_code == 2 and "'smollm2' is the embedded model" in embedded.output
    keyless = runner.invoke(app, [*base, "--backend", "nnsight", "--remote", "--model", "meta-llama/Llama-3.1-70B"])
    assert keyless.exit_code == 2 and "NDIF API key" in keyless.output
    with_ray = runner.invoke(app, [*base, "--backend", "nnsight", "--remote", "--ray", "local"])
    assert with_ray.exit_code == 2 and "drop --ray" in with_ray.output
    assert not (tmp_path / "art" / "r" / "activations").exists()


def test_simulated_remote_trace_matches_hooks(tiny_model):
    """nnsight's remote="local" serialises the request as for NDIF and runs it here: same activations."""
    examples = make_examples(5)
    config = resolve_config(tiny_model, "blocks.1.hook_resid_post,blocks.2.attn.hook_z", "last_prompt,user_claim",
                            CaptureConfig((), (), batch_size=3))
    encoded = validate(tiny_model, examples, parse_positions(list(config.positions)))
    ref = compute_shard(tiny_model, examples, encoded, ShardRange(0, 0, 5), config, make_backend("hooks"))
    got = compute_shard(tiny_model, examples, encoded, ShardRange(0, 0, 5), config, RemoteNnsightBackend("local"))
    for name, value in ref.items():
        np.testing.assert_allclose(got[name], value, atol=1e-5, err_msg=name)
