import json

from typer.testing import CliRunner

from interp.store.activations import ActivationStore
from interp.tasks.example import write_examples
from tests.conftest import make_examples
from workbench.cli import app

runner = CliRunner()


def test_malformed_jsonl_fails_before_any_model_work(tmp_path):
    data = tmp_path / "bad.jsonl"
    good = make_examples(3)
    lines = [json.dumps(ex.to_dict()) for ex in good]
    broken = good[1].to_dict()
    del broken["pair_id"]
    lines[1] = json.dumps(broken)
    data.write_text("\n".join(lines) + "\n")
    # the model spec does not exist: if the data were read after loading, the error would be about the model
    result = runner.invoke(app, ["cache", "--run", "r", "--data", str(data), "--model", str(tmp_path / "missing.gguf"),
                                 "--artifacts", str(tmp_path / "art")])
    assert result.exit_code == 2
    assert f"{data}, line 2: missing field 'pair_id'" in result.output
    assert not (tmp_path / "art").exists()


def test_not_json_and_bad_field_are_named(tmp_path):
    data = tmp_path / "bad.jsonl"
    record = make_examples(1)[0].to_dict()
    record["correct"] = 7
    data.write_text(json.dumps(record) + "\n{not json\n")
    result = runner.invoke(app, ["cache", "--run", "r", "--data", str(data), "--artifacts", str(tmp_path)])
    assert result.exit_code == 2 and "line 1: field 'correct' must index into choices" in result.output
    data.write_text(json.dumps(make_examples(1)[0].to_dict()) + "\n{not json\n")
    result = runner.invoke(app, ["cache", "--run", "r", "--data", str(data), "--artifacts", str(tmp_path)])
    assert result.exit_code == 2 and "line 2: not valid JSON" in result.output


def test_cache_command_writes_store_and_provenance(tiny_model_dir, tmp_path):
    data = tmp_path / "data.jsonl"
    write_examples(make_examples(10), data)
    args = ["cache", "--run", "r1", "--data", str(data), "--model", str(tiny_model_dir), "--sites",
            "blocks.*.hook_resid_post", "--positions", "last_prompt,user_claim", "--artifacts", str(tmp_path / "art"),
            "--batch-size", "3", "--shard-size", "4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    store = ActivationStore(tmp_path / "art" / "r1" / "activations")
    assert store.get("blocks.3.hook_resid_post", "last_prompt").shape == (10, 64)
    assert len(store.manifest["shards"]) == 3
    run = json.loads((tmp_path / "art" / "r1" / "run.json").read_text())
    assert run["steps"]["cache"]["model"]["weights_hash"] == store.model_hash
    assert run["steps"]["cache"]["config"]["positions"] == "last_prompt,user_claim"
    # a second identical command finds the finished store and leaves it alone
    before = (store.path / "shard-00000.safetensors").stat().st_mtime_ns
    assert runner.invoke(app, args).exit_code == 0
    assert (store.path / "shard-00000.safetensors").stat().st_mtime_ns == before
    # a different configuration under the same run name is refused, not overwritten
    other = runner.invoke(app, [*args[:-4], "--positions", "last_prompt", "--artifacts", str(tmp_path / "art")])
    assert other.exit_code == 2 and "another configuration" in other.output
