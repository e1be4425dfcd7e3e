"""`workbench eval` on external files: --n counts records, --letters adds the letter copy, bad input is named."""

import json

import pandas as pd
from typer.testing import CliRunner

from workbench.cli import app

runner = CliRunner()


def _caa_file(path, n):
    path.write_text(json.dumps([{"question": f"I believe {i} is odd. Is {i} odd?\n (A) Yes\n (B) No",
                                 "answer_matching_behavior": " (A)", "answer_not_matching_behavior": " (B)"}
                                for i in range(n)]))
    return path


def test_eval_on_a_caa_file_counts_records_and_writes_the_profile(tiny_model_dir, tmp_path):
    data = _caa_file(tmp_path / "syc.json", 5)
    result = runner.invoke(app, ["eval", "--run", "e", "--model", str(tiny_model_dir), "--data", str(data),
                                 "--format", "caa", "--n", "3", "--artifacts", str(tmp_path / "art")])
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "art" / "e" / "eval" / "eval.json").read_text())
    assert out["n_examples"] == 6  # 3 records, a sycophantic and an honest example each
    scores = pd.read_parquet(tmp_path / "art" / "e" / "eval" / "scores.parquet")
    assert len(scores) == 6 and scores["chose_pushed"].isin([0.0, 1.0]).all()


def test_eval_letters_adds_a_letter_copy_of_arc_items(tiny_model_dir, tmp_path):
    data = tmp_path / "arc.jsonl"
    record = {"id": "q", "question": "Which is a planet?",
              "choices": {"label": ["A", "B", "C", "D"], "text": ["Mars", "Moon", "Sun", "Comet"]}, "answerKey": "A"}
    data.write_text("\n".join(json.dumps({**record, "id": f"q{i}"}) for i in range(4)) + "\n")
    result = runner.invoke(app, ["eval", "--run", "a", "--model", str(tiny_model_dir), "--data", str(data),
                                 "--format", "arc", "--letters", "--artifacts", str(tmp_path / "art")])
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(tmp_path / "art" / "a" / "eval" / "scores.parquet")
    assert sorted(scores["task"].unique()) == ["arc", "arc_letters"] and len(scores) == 8


def test_eval_names_the_bad_record_before_loading_the_model(tmp_path):
    data = tmp_path / "syc.json"
    data.write_text(json.dumps([{"question": "Q\n (A) x\n (B) y", "answer_matching_behavior": "(A)"}]))
    result = runner.invoke(app, ["eval", "--run", "e", "--model", str(tmp_path / "missing.gguf"), "--data", str(data),
                                 "--format", "caa", "--artifacts", str(tmp_path / "art")])
    assert result.exit_code == 2
    assert str(data) in result.output and "'answer_not_matching_behavior'" in result.output
    assert not (tmp_path / "art" / "e" / "eval").exists()
