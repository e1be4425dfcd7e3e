import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from interp.capture.collect import CaptureConfig, capture
from interp.store.activations import ActivationStore, StoreError
from interp.tasks.example import write_examples
from tests.conftest import make_examples

SITES = "blocks.0.hook_resid_post,blocks.2.hook_resid_pre,blocks.1.hook_attn_out,blocks.1.hook_mlp_out,blocks.2.attn.hook_z,blocks.-1.hook_resid_post"
POSITIONS = "last_prompt,answer,user_claim,all"


def _all_arrays(store):
    out = {}
    for site in store.sites:
        for pos in ("last_prompt", "answer", "user_claim"):
            if pos in store.positions:
                out[(site, pos)] = store.get(site, pos)
        if "all" in store.positions:
            out[(site, "all")] = store.get_tokens(site).acts
    return out


def test_three_backends_agree_on_tiny_model(tiny_model, examples, tmp_path):
    cfg = CaptureConfig((), (), batch_size=4, shard_size=8)
    stores = {b: capture(tiny_model, examples, SITES, POSITIONS, tmp_path / b, backend=b, config=cfg)
              for b in ("hooks", "nnsight", "tl")}
    ref = _all_arrays(stores["hooks"])
    assert ref[("blocks.2.attn.hook_z", "last_prompt")].shape == (12, 64)
    for name in ("nnsight", "tl"):
        got = _all_arrays(stores[name])
        for key, value in ref.items():
            np.testing.assert_allclose(got[key], value, atol=1e-4, err_msg=f"{name} {key}")


def test_positions_resolve_to_the_right_tokens(tiny_model, examples, tmp_path):
    store = capture(tiny_model, examples, "blocks.1.hook_resid_post", POSITIONS, tmp_path)
    site = "blocks.1.hook_resid_post"
    tokens = store.get_tokens(site)
    has_claim, has_answer = store.has("user_claim"), store.has("answer")
    assert has_claim.tolist() == [ex.user_claim is not None for ex in examples]
    assert has_answer.tolist() == [ex.answer is not None for ex in examples]
    from interp.capture.positions import encode_example

    for i, ex in enumerate(examples):
        enc = encode_example(tiny_model, ex)
        rows = tokens.acts[tokens.example_index == i]  # [n_tokens, d]
        assert len(rows) == len(enc)
        np.testing.assert_array_equal(store.get(site, "last_prompt")[i], rows[enc.prompt_len - 1])
        if ex.answer:
            np.testing.assert_array_equal(store.get(site, "answer")[i], rows[-1])
        if ex.user_claim:
            claim_text = tiny_model.tokenizer.decode([enc.ids[t] for t in enc.claim])
            assert ex.user_claim.strip() in claim_text
            np.testing.assert_allclose(store.get(site, "user_claim")[i], rows[list(enc.claim)].mean(0), atol=1e-6)
        else:
            assert np.isnan(store.get(site, "user_claim")[i]).all()


def test_padding_side_does_not_change_activations(tiny_model, examples, tmp_path):
    right = capture(tiny_model, examples, SITES, POSITIONS, tmp_path / "r",
                    config=CaptureConfig((), (), batch_size=5, padding_side="right"))
    left = capture(tiny_model, examples, SITES, POSITIONS, tmp_path / "l",
                   config=CaptureConfig((), (), batch_size=5, padding_side="left"))
    one = capture(tiny_model, examples, SITES, POSITIONS, tmp_path / "one", config=CaptureConfig((), (), batch_size=1))
    a, b, c = _all_arrays(right), _all_arrays(left), _all_arrays(one)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-5, err_msg=str(key))
        np.testing.assert_allclose(a[key], c[key], atol=1e-5, err_msg=str(key))


def test_existing_store_is_never_silently_overwritten(tiny_model, examples, tmp_path):
    store = capture(tiny_model, examples, "blocks.1.hook_resid_post", "last_prompt", tmp_path)
    before = (tmp_path / "shard-00000.safetensors").read_bytes()
    again = capture(tiny_model, examples, "blocks.1.hook_resid_post", "last_prompt", tmp_path)
    assert again.manifest["fingerprint"] == store.manifest["fingerprint"]
    with pytest.raises(StoreError, match="another configuration"):
        capture(tiny_model, examples[:6], "blocks.1.hook_resid_post", "last_prompt", tmp_path)
    assert (tmp_path / "shard-00000.safetensors").read_bytes() == before
    replaced = capture(tiny_model, examples[:6], "blocks.1.hook_resid_post", "last_prompt", tmp_path, overwrite=True)
    assert replaced.n_examples == 6


def test_corrupt_and_missing_shards_are_named(tiny_model, examples, tmp_path):
    capture(tiny_model, examples, "blocks.1.hook_resid_post", "last_prompt", tmp_path,
            config=CaptureConfig((), (), shard_size=4))
    shard = tmp_path / "shard-00001.safetensors"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(StoreError, match="shard-00001.safetensors: corrupt shard"):
        ActivationStore(tmp_path).get("blocks.1.hook_resid_post", "last_prompt")
    shard.write_bytes(b"\xff" * 100)  # also wrong content with a wrong size
    with pytest.raises(StoreError, match="shard-00001.safetensors"):
        ActivationStore(tmp_path).get("blocks.1.hook_resid_post", "last_prompt")
    shard.unlink()
    with pytest.raises(StoreError, match="shard-00001.safetensors: shard listed in manifest.json is missing"):
        ActivationStore(tmp_path).get("blocks.1.hook_resid_post", "last_prompt")
    with pytest.raises(StoreError, match="site 'blocks.3.hook_resid_post' not cached"):
        ActivationStore(tmp_path).get("blocks.3.hook_resid_post", "last_prompt")


def test_bad_position_fails_before_model_work(tiny_model, examples, tmp_path):
    with pytest.raises(ValueError, match="unknown position 'middle'"):
        capture(tiny_model, examples, "blocks.1.hook_resid_post", "middle", tmp_path)
    assert not (tmp_path / "manifest.json").exists()


def _cli(*args, cwd):
    return [sys.executable, "-m", "workbench", "cache", *args]


def test_resume_after_kill_is_bit_identical(tiny_model_dir, tmp_path):
    """Kill a caching job mid-run (SIGKILL), resume it, compare with an uninterrupted run byte for byte."""
    data = tmp_path / "data.jsonl"
    write_examples(make_examples(360), data)
    common = ["--model", str(tiny_model_dir), "--data", str(data), "--sites", "blocks.*.hook_resid_post",
              "--positions", "last_prompt,user_claim", "--shard-size", "6", "--batch-size", "3"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    killed_dir = tmp_path / "art"
    proc = subprocess.Popen([*_cli(cwd=tmp_path), *common, "--run", "r", "--artifacts", str(killed_dir)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    manifest = killed_dir / "r" / "activations" / "manifest.json"
    deadline = time.time() + 120
    shards_at_kill = 0
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the caching job exited early: {proc.stderr.read() if proc.stderr else ''}")
        if manifest.is_file():
            try:
                shards_at_kill = len(json.loads(manifest.read_text())["shards"])
            except (json.JSONDecodeError, KeyError):
                shards_at_kill = 0
            if shards_at_kill >= 3:
                break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads(manifest.read_text())
    assert not state["complete"], "the job finished before it could be killed; make it longer"
    assert 3 <= len(state["shards"]) < 60
    with pytest.raises(StoreError, match="incomplete store"):
        ActivationStore(killed_dir / "r" / "activations")
    subprocess.run([*_cli(cwd=tmp_path), *common, "--run", "r", "--artifacts", str(killed_dir)], env=env, check=True,
                   capture_output=True)
    subprocess.run([*_cli(cwd=tmp_path), *common, "--run", "r", "--artifacts", str(tmp_path / "clean")], env=env,
                   check=True, capture_output=True)
    resumed = killed_dir / "r" / "activations"
    clean = tmp_path / "clean" / "r" / "activations"
    files = sorted(p.name for p in clean.glob("shard-*.safetensors"))
    assert len(files) == 60
    assert sorted(p.name for p in resumed.glob("shard-*.safetensors")) == files
    assert not list(resumed.glob(".*.tmp")), "a temp file survived the kill"
    for name in files:
        assert (resumed / name).read_bytes() == (clean / name).read_bytes(), name
    assert ActivationStore(resumed).manifest["complete"]


@pytest.mark.embedded
def test_backends_agree_on_embedded_model(embedded_model, examples, tmp_path):
    sites = "blocks.7.hook_resid_post,blocks.22.hook_resid_post"
    cfg = CaptureConfig((), (), batch_size=6)
    ref = capture(embedded_model, examples, sites, "last_prompt,user_claim", tmp_path / "h", config=cfg)
    for backend in ("nnsight", "tl"):
        other = capture(embedded_model, examples, sites, "last_prompt,user_claim", tmp_path / backend,
                        backend=backend, config=cfg)
        for site in ref.sites:
            for pos in ("last_prompt", "user_claim"):
                np.testing.assert_allclose(other.get(site, pos), ref.get(site, pos), atol=1e-4, err_msg=f"{backend} {site} {pos}")
