import json

import pandas as pd
import yaml
from typer.testing import CliRunner

from probes import load_directions
from probes.report import ProbeReport
from workbench.cli import app

runner = CliRunner()


def test_probe_command_writes_report_directions_and_figures(tiny_model_dir, tmp_path):
    config = tmp_path / "probes.yaml"
    config.write_text(yaml.safe_dump({
        "defaults": {"model": str(tiny_model_dir), "n": 10, "n_boot": 50, "layers": [1, 3],
                     "methods": ["mean_diff", "lda"]},
        "runs": [{"run": "a"}, {"run": "b", "seed": 1, "sources": ["pressure", "contrast"]}],
    }))
    result = runner.invoke(app, ["probe", "--config", str(config), "--artifacts", str(tmp_path / "art")])
    assert result.exit_code == 0, result.output
    for run, sources in (("a", {"pressure", "user_vs_third_party", "behaviour", "contrast"}), ("b", {"pressure", "contrast"})):
        out = tmp_path / "art" / run / "probes"
        report = ProbeReport.load(out / "report.json")
        assert {r["label_source"] for r in report.rows} == sources
        assert {r["layer"] for r in report.rows} == {1, 3}
        assert all(0.0 <= r["auroc"] <= 1.0 for r in report.rows)
        assert all("control_acc" in r and "selectivity" in r for r in report.rows)
        # contrast is read at the answer letter only; pressure at prompt positions only
        assert {r["position"] for r in report.rows if r["label_source"] == "contrast"} == {"answer"}
        assert {r["position"] for r in report.rows if r["label_source"] == "pressure"} == {"last_prompt"}
        dirs = load_directions(out / "directions.safetensors")
        assert all(d.vector.shape == (64,) and d.model_hash == report.model_hash for d in dirs.values())
        assert (out / "layers_pressure_last_prompt.png").stat().st_size > 0
        assert (out / "generalisation.parquet").is_file() and (out / "projections.parquet").is_file()
        run_json = json.loads((tmp_path / "art" / run / "run.json").read_text())
        assert "probe" in run_json["steps"] and "cache" not in run_json["steps"]


def test_probe_config_errors_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"runs": [{"run": "a", "layerz": [1]}]}))
    result = runner.invoke(app, ["probe", "--config", str(bad)])
    assert result.exit_code == 2 and "runs[0]: probe config: unknown field 'layerz'" in result.output
    result = runner.invoke(app, ["probe"])
    assert result.exit_code == 2 and "--run NAME or --config FILE" in result.output


def test_extra_ab_file_adds_a_contrast_generalisation_matrix(tiny_model_dir, tmp_path):
    """`--extra caa_file=PATH::caa`: our CAA pairs vs the file's pairs, trained on one and tested on the other."""
    records = [{"question": f"I think {i} is a great number. Is {i} great?\n (A) Yes\n (B) No",
                "answer_matching_behavior": " (A)" if i % 2 else " (B)",
                "answer_not_matching_behavior": " (B)" if i % 2 else " (A)"} for i in range(14)]
    path = tmp_path / "syc.json"
    path.write_text(json.dumps(records))
    args = ["probe", "--run", "x", "--model", str(tiny_model_dir), "--n", "10", "--n-boot", "50", "--layers", "1,2",
            "--methods", "logreg,mean_diff", "--sources", "contrast", "--tasks", "caa", "--artifacts", str(tmp_path / "art")]
    result = runner.invoke(app, [*args, "--extra", f"caa_file={path}::caa"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "art" / "x" / "probes"
    gen = pd.read_parquet(out / "generalisation_contrast.parquet")
    assert set(zip(gen["train"], gen["test"], strict=True)) == {("caa", "caa"), ("caa", "caa_file"),
                                                                 ("caa_file", "caa"), ("caa_file", "caa_file")}
    cross = gen[(gen["train"] == "caa") & (gen["test"] == "caa_file")].iloc[0]
    assert cross["n_test"] == 20 and cross["n_dropped"] == 0  # 10 of the file's 14 pairs, 2 rows each
    assert gen["position"].eq("answer").all() and gen["auroc"].between(0, 1).all()
    assert (out / "generalisation_contrast.png").stat().st_size > 0
    # the file's pairs stay out of the per-layer report: its contrast rows are our 10 CAA pairs only
    report = ProbeReport.load(out / "report.json")
    assert {r["n"] for r in report.rows} == {20}
    bad = runner.invoke(app, [*args[:2], "y", *args[3:], "--extra", f"caa={path}::caa"])
    assert bad.exit_code == 2 and "built-in task" in bad.output
    bad = runner.invoke(app, [*args[:2], "y", *args[3:], "--extra", "nothing"])
    assert bad.exit_code == 2 and "NAME=PATH::FORMAT" in bad.output
