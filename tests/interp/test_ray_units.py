"""The Ray path's parts that need no cluster: the worker as a plain object, agreement, the missing-Ray error."""

import sys

import pytest
from typer.testing import CliRunner

from interp.capture.collect import CaptureConfig, capture
from interp.capture.distributed import CaptureWorker, _check_agreement
from interp.capture.ray_pool import RayOptions, RayUnavailableError, require_ray
from interp.models.memory import LoadRequest
from interp.store.activations import StoreError
from interp.store.writer import add_shard, commit, open_store, pending_shards
from interp.tasks.example import write_examples
from tests.conftest import make_examples
from workbench.cli import app

SITES, POSITIONS = "blocks.*.hook_resid_post,blocks.2.attn.hook_z", "last_prompt,user_claim,all"


def test_workers_as_plain_objects_write_the_in_process_store(tiny_model, tiny_model_dir, tmp_path):
    """Two CaptureWorkers split the shards between them; the driver protocol commits the same bytes."""
    examples, config = make_examples(11), CaptureConfig((), (), batch_size=2, shard_size=3)
    ref = capture(tiny_model, examples, SITES, POSITIONS, tmp_path / "ref", config=config)
    folder = tmp_path / "split"
    workers = [CaptureWorker(LoadRequest(str(tiny_model_dir)), examples, SITES, POSITIONS, config, "hooks",
                             str(folder), threads=1) for _ in range(2)]
    seed = workers[0].describe()["seed"]
    _check_agreement([w.describe() for w in workers])
    manifest = open_store(folder, examples, seed, overwrite=False)
    for i, shard in enumerate(reversed(pending_shards(manifest))):  # any order, any worker
        result = workers[i % 2].run_shard(shard)
        assert result["fingerprint"] == seed["fingerprint"] and result["tokens"] > 0
        manifest = add_shard(folder, manifest, result["record"])
    store = commit(folder, manifest)
    for path in ref.path.glob("shard-*.safetensors"):
        assert (store.path / path.name).read_bytes() == path.read_bytes()
    assert store.manifest["shards"] == ref.manifest["shards"]


def test_commit_refuses_a_missing_or_resized_shard(tiny_model, tmp_path):
    store = capture(tiny_model, make_examples(6), SITES, POSITIONS, tmp_path,
                    config=CaptureConfig((), (), shard_size=3))
    manifest = dict(store.manifest, complete=False)
    with pytest.raises(StoreError, match="shard-00001.safetensors .3:6. not done"):
        commit(tmp_path, dict(manifest, shards=manifest["shards"][:1]))
    shard = tmp_path / "shard-00001.safetensors"
    shard.write_bytes(shard.read_bytes() + b" ")
    with pytest.raises(StoreError, match="shard-00001.safetensors: .* bytes on disk, the record says"):
        commit(tmp_path, manifest)


def test_a_loading_error_waits_in_describe(tmp_path):
    worker = CaptureWorker(LoadRequest(str(tmp_path / "nowhere")), make_examples(2), SITES, POSITIONS, None,
                           "hooks", str(tmp_path), threads=1)
    with pytest.raises(Exception, match="nowhere"):
        worker.describe()


def test_workers_with_different_weights_are_refused():
    a = {"worker": "node-a:1", "seed": {"fingerprint": "f1", "model": {"weights_hash": "aaaa", "source": "/m"}}}
    b = {"worker": "node-b:2", "seed": {"fingerprint": "f2", "model": {"weights_hash": "bbbb", "source": "/m"}}}
    _check_agreement([a, dict(a, worker="node-c:3")])
    with pytest.raises(StoreError, match="Ray workers disagree: node-a:1 loaded weights aaaa .* node-b:2 loaded bbbb"):
        _check_agreement([a, b])


def test_ray_options_are_checked():
    with pytest.raises(ValueError, match="workers"):
        RayOptions(workers=0)


def test_missing_ray_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(RayUnavailableError, match=r"pip install '\.\[ray\]'"):
        require_ray()
    data = tmp_path / "d.jsonl"
    write_examples(make_examples(2), data)
    result = CliRunner().invoke(app, ["cache", "--run", "r", "--data", str(data), "--model", "smollm2",
                                      "--artifacts", str(tmp_path / "art"), "--ray", "local",
                                      "--ignore-memory-check"])
    assert result.exit_code == 2 and "pip install '.[ray]'" in result.output


def test_gpu_options_with_ray_need_gpus_per_worker(tmp_path):
    data = tmp_path / "d.jsonl"
    write_examples(make_examples(2), data)
    result = CliRunner().invoke(app, ["cache", "--run", "r", "--data", str(data), "--artifacts", str(tmp_path / "a"),
                                      "--ray", "local", "--device", "cuda"])
    assert result.exit_code == 2 and "need --gpus-per-worker" in result.output
    assert not (tmp_path / "a").exists()
