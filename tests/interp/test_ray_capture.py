"""Caching over a local 2-worker Ray cluster: the store equals the in-process one bit for bit, even after a crash.

Skipped when Ray is not installed (`pip install '.[ray]'`). One small cluster
(2 CPUs) serves the whole module and is always shut down.
"""

import json

import pytest

ray = pytest.importorskip("ray")

from typer.testing import CliRunner  # noqa: E402

from interp.capture.collect import CaptureConfig, capture  # noqa: E402
from interp.capture.distributed import capture_on_ray  # noqa: E402
from interp.capture.ray_pool import RayOptions  # noqa: E402
from interp.models.loading import ModelLoadError  # noqa: E402
from interp.models.memory import LoadRequest  # noqa: E402
from interp.store.activations import ActivationStore  # noqa: E402
from interp.tasks.example import write_examples  # noqa: E402
from tests.conftest import make_examples  # noqa: E402
from workbench.cli import app  # noqa: E402

SITES = "blocks.*.hook_resid_post,blocks.1.attn.hook_z,blocks.2.hook_mlp_out"
POSITIONS = "last_prompt,answer,user_claim,all"
CONFIG = CaptureConfig((), (), batch_size=3, shard_size=5)
OPTIONS = RayOptions(address="local", workers=2)


@pytest.fixture(scope="module")
def reference(tiny_model, tmp_path_factory):
    """The in-process store every Ray run must reproduce."""
    return capture(tiny_model, make_examples(23), SITES, POSITIONS, tmp_path_factory.mktemp("ref") / "store",
                   config=CONFIG)


def assert_same_store(got, ref):
    """Every file byte for byte; the manifest equal except its finishing time; no temp files left."""
    names = sorted(p.name for p in ref.path.iterdir())
    assert sorted(p.name for p in got.path.iterdir()) == names
    for name in names:
        if name == "manifest.json":
            a, b = (json.loads((s.path / name).read_text()) for s in (got, ref))
            a.pop("finished"), b.pop("finished")
            assert a == b
        else:
            assert (got.path / name).read_bytes() == (ref.path / name).read_bytes(), name


def test_two_workers_write_the_in_process_store_bit_for_bit(ray_cluster, tiny_model_dir, reference, tmp_path):
    seen = []
    out = capture_on_ray(LoadRequest(str(tiny_model_dir)), make_examples(23), SITES, POSITIONS, tmp_path / "store",
                         config=CONFIG, options=OPTIONS, progress=lambda n, t: seen.append((n, t)))
    assert out.retried == 0 and out.shards_run == 5 and len(set(out.workers)) == 2
    assert sum(n for n, _ in seen) == 23 and all(t > 0 for _, t in seen)
    assert_same_store(out.store, reference)


def test_a_worker_dying_mid_write_still_ends_with_the_correct_store(ray_cluster, tiny_model_dir, reference, tmp_path):
    """The first worker to reach a shard writes half of it to the temp file and exits: the shard is redone elsewhere."""
    marker = tmp_path / "crashed"
    out = capture_on_ray(LoadRequest(str(tiny_model_dir)), make_examples(23), SITES, POSITIONS, tmp_path / "store",
                         config=CONFIG, options=OPTIONS, crash_marker=str(marker))
    assert marker.exists(), "the fault was not injected"
    assert out.retried == 1 and len(set(out.workers)) == 3  # two workers + one replacement
    assert not list(out.store.path.glob(".*.tmp")), "the torn temp file survived"
    assert_same_store(out.store, reference)


def test_ray_resumes_an_interrupted_in_process_store(ray_cluster, tiny_model, tiny_model_dir, reference, tmp_path):
    folder = tmp_path / "store"
    capture(tiny_model, make_examples(23), SITES, POSITIONS, folder, config=CONFIG)
    manifest = json.loads((folder / "manifest.json").read_text())  # as if killed after two shards
    for shard in manifest["shards"][2:]:
        (folder / shard["file"]).unlink()
    manifest.update(shards=manifest["shards"][:2], complete=False)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    out = capture_on_ray(LoadRequest(str(tiny_model_dir)), make_examples(23), SITES, POSITIONS, folder,
                         config=CONFIG, options=OPTIONS)
    assert out.shards_run == 3
    assert_same_store(out.store, reference)


def test_a_loading_error_reaches_the_driver_as_itself(ray_cluster, tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        (tmp_path / "empty").mkdir()
        capture_on_ray(LoadRequest(str(tmp_path / "empty")), make_examples(4), SITES, POSITIONS, tmp_path / "s",
                       options=OPTIONS)
    assert not (tmp_path / "s").exists()


def test_cache_command_with_ray(ray_cluster, tiny_model_dir, reference, tmp_path):
    data = tmp_path / "data.jsonl"
    write_examples(make_examples(23), data)
    result = CliRunner().invoke(app, [
        "cache", "--run", "r", "--data", str(data), "--model", str(tiny_model_dir), "--sites", SITES,
        "--positions", POSITIONS, "--batch-size", "3", "--shard-size", "5", "--artifacts", str(tmp_path / "art"),
        "--ray", "local", "--workers", "2"])
    assert result.exit_code == 0, result.output
    store = ActivationStore(tmp_path / "art" / "r" / "activations")
    assert_same_store(store, reference)
    run = json.loads((tmp_path / "art" / "r" / "run.json").read_text())["steps"]["cache"]
    assert run["config"]["ray"]["workers"] == 2 and run["config"]["ray"]["retried"] == 0
    assert run["model"]["weights_hash"] == store.model_hash
