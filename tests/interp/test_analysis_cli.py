"""`workbench analyze` on the tiny model writes the expected files; the summaries' helpers agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from interp.analysis.summary import recovered_ci, recovered_grid_ci
from interp.tasks import build_task, write_examples

EXPECTED = {
    "dla": ["dla_logit_lens.parquet", "dla_projection.html", "dla_projection.png", "dla_lens_logit_diff.png",
            "dla_summary.json"],
    "patching": ["patching_resid.parquet", "patching_layers.parquet", "patching_claim.parquet",
                 "patching_pairs.parquet", "patching_heatmap.html", "patching_heatmap.png",
                 "patching_layers.png", "patching_summary.json"],
    "heads": ["heads_ranking.parquet", "heads_ablation.parquet", "heads_proj_diff.png", "heads_attn_claim.html",
              "heads_ablation.html", "heads_ablation.png", "heads_summary.json"],
}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "answer.jsonl"
    write_examples(build_task("answer", n=8, seed=0), path)
    return path


@pytest.mark.parametrize("what", sorted(EXPECTED))
def test_cli_writes_the_expected_files(what: str, tiny_model_dir: Path, data_file: Path, tmp_path: Path) -> None:
    from workbench.cli import app

    args = ["analyze", "--run", "mech", "--what", what, "--model", str(tiny_model_dir), "--data", str(data_file),
            "--n-pairs", "3", "--ks", "1,2", "--n-random", "2", "--layer", "2", "--artifacts", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = tmp_path / "mech" / "analysis"
    for name in EXPECTED[what]:
        assert (out / name).is_file(), name
    summary = json.loads((out / f"{what}_summary.json").read_text())
    assert len(summary["pairs"]) == 3
    if what != "patching":
        assert "mean difference" in summary["direction"]["source"]
        assert summary["direction"]["layer"] == 2
    record = json.loads((tmp_path / "mech" / "run.json").read_text())
    assert f"analyze-{what}" in record["steps"]


def test_cli_reads_a_steering_vector(tiny_model_dir: Path, data_file: Path, tmp_path: Path) -> None:
    from steering.artifacts.steering_vector import SteeringVector
    from workbench.cli import app

    vector = SteeringVector({1: np.ones(64, dtype=np.float32), 3: -np.ones(64, dtype=np.float32)},
                            method="mean_diff", d_model=64)
    path = vector.save(tmp_path / "v.safetensors")
    base = ["analyze", "--run", "vec", "--what", "dla", "--model", str(tiny_model_dir), "--data", str(data_file),
            "--n-pairs", "2", "--direction", str(path), "--artifacts", str(tmp_path)]
    result = CliRunner().invoke(app, base)
    assert result.exit_code == 2 and "--layer" in result.output  # two layers: must choose
    result = CliRunner().invoke(app, [*base, "--layer", "3"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "vec" / "analysis" / "dla_summary.json").read_text())
    assert summary["direction"]["layer"] == 3 and "v.safetensors" in summary["direction"]["source"]
    assert summary["direction"]["norm"] == pytest.approx(8.0)


def test_cli_rejects_an_unknown_analysis(tiny_model_dir: Path, tmp_path: Path) -> None:
    from workbench.cli import app

    result = CliRunner().invoke(app, ["analyze", "--run", "x", "--what", "circuits", "--model", str(tiny_model_dir),
                                      "--artifacts", str(tmp_path)])
    assert result.exit_code == 2 and "dla, patching, heads" in result.output


def test_grid_bootstrap_agrees_with_the_scalar_one() -> None:
    rng = np.random.default_rng(0)
    clean, corrupt = rng.normal(2.0, 1.0, 30), rng.normal(0.0, 1.0, 30)
    patched = np.stack([corrupt + 0.5 * (clean - corrupt) + rng.normal(0, 0.3, 30), clean], axis=1)
    patched[3, 0] = np.nan
    groups = np.array([f"p{i}" for i in range(30)])
    grid = recovered_grid_ci(patched, clean, corrupt, groups, n_boot=400)
    for j in range(2):
        ci = recovered_ci(patched[:, j], clean, corrupt, groups, n_boot=400)
        assert grid[j, 0] == pytest.approx(ci.estimate)
        assert grid[j, 1] == pytest.approx(ci.low, abs=0.05) and grid[j, 2] == pytest.approx(ci.high, abs=0.05)
    assert grid[1, 0] == pytest.approx(1.0)


def test_cli_heads_by_another_ranking_keeps_the_default_files(tiny_model_dir: Path, data_file: Path,
                                                              tmp_path: Path) -> None:
    from workbench.cli import app

    base = ["analyze", "--run", "rank", "--what", "heads", "--model", str(tiny_model_dir), "--data", str(data_file),
            "--n-pairs", "2", "--ks", "1", "--n-random", "1", "--artifacts", str(tmp_path)]
    bad = CliRunner().invoke(app, [*base, "--rank-by", "vibes"])
    assert bad.exit_code == 2 and "proj_diff" in bad.output
    result = CliRunner().invoke(app, [*base, "--rank-by", "dla_diff"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "rank" / "analysis"
    assert (out / "heads_ablation_by_dla_diff.png").is_file() and (out / "heads_by_dla_diff_summary.json").is_file()
    assert not (out / "heads_summary.json").exists()
