"""Benchmark: the frontier sweep of the README on the embedded SmolLM2 (issue target: under 30 minutes on 2 cores).

It runs `workbench sweep` with the README's frontier command in a fresh run folder (nothing reused) and prints
one markdown row for bench/RESULTS.md: the wall time, and where it went, read from what the sweep writes:
- the training of each vector (the `seconds` a learned, gated or low-rank vector records, per layer group);
- the unsteered baseline (frozen prefix, baseline scores and generations: `sweep.json` `baseline_seconds`),
  which is also the baseline the ratio is taken against: one pass of the test set;
- the cells (each row's `seconds` is per strength of its pass).
The machine is shared: run it when nothing else is, and report the load average it prints.

Example:
    python bench/frontier.py --threads 2 --arc ../shared/data/arc_easy/dev.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: the README's frontier sweep (methods, grids and test set); --arc adds the ARC items when a file is given
METHODS = ("learned,learned#8+12+16,gated,gated#8+12+16,lowrank,copyheads,prompt:truthful,prompt:skeptical,"
           "prompt:independent,prompt:no_flattery,prompt:truthful+gated,caa")
GRIDS = "learned=-1.5,-1,-0.5;gated=-2,-1.5,-1,-0.5;lowrank=0.5,1,1.5"


def sweep_command(run: str, artifacts: Path, arc: str | None, n_arc: int) -> list[str]:
    """The README's frontier sweep as an argument list."""
    command = [sys.executable, "-m", "workbench", "sweep", "--run", run, "--artifacts", str(artifacts),
               "--method", METHODS, "--layers", "12", "--strengths=-8,8", "--family-strengths", GRIDS,
               "--n-test", "60", "--n-small", "6", "--n-feedback", "3", "--n-capability", "12",
               "--gen-prompts", "2", "--gen-tokens", "16", "--gate-layer", "6", "--loss", "kl_general",
               "--budget", "0.02", "--gain", "answer_flip_rate_drop",
               "--constraints", "neutral_accuracy_drop<=0.02;user_right_known_accuracy_drop<=0.02"]
    if arc:
        command += ["--arc", arc, "--n-arc", str(n_arc)]
    return command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arc", default=None, help="an ARC-format JSONL (the README uses ARC-Easy dev)")
    parser.add_argument("--n-arc", type=int, default=200)
    parser.add_argument("--keep", type=Path, default=None, help="write the run into this artifacts folder (run "
                        "'frontier') and keep it; it must not hold that run yet")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = args.keep or Path(tmp)
        if (artifacts / "frontier").exists():
            raise SystemExit(f"{artifacts / 'frontier'} exists: the benchmark times a fresh run")
        start = time.perf_counter()
        subprocess.run(sweep_command("frontier", artifacts, args.arc, args.n_arc), check=True, env=env, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        folder = artifacts / "frontier" / "sweep"
        record = json.loads((folder / "sweep.json").read_text())
        table = pd.read_parquet(folder / "cells.parquet")
        training = {}
        for name, info in record["vectors"].items():
            if "+" in name and name.startswith("prompt:"):  # a prompt over another method's vector: not trained again
                continue
            header = json.loads(json.dumps(_meta(Path(info["file"]))))
            groups = header.get("layers", {}) if isinstance(header.get("layers"), dict) else {}
            seconds = [g.get("seconds", 0.0) for g in groups.values() if isinstance(g, dict)] or \
                [header.get("seconds", 0.0)]
            training[name] = float(sum(s for s in seconds if isinstance(s, int | float)))
        cells = float((table["seconds"]).sum())
        baseline = float(record.get("baseline_seconds", float("nan")))
    trained = ", ".join(f"{k} {v / 60:.1f} min" for k, v in training.items() if v > 0)
    print(f"| frontier sweep ({len(table)} cells incl. anchors, {len(record['vectors'])} methods), {args.threads} "
          f"threads, load {load:.1f} | {wall / 60:.1f} min (target < 30) | training: {trained} | baseline pass "
          f"{baseline:.0f} s | cells {cells / 60:.1f} min | wall / baseline pass {wall / baseline:.1f}x |")


def _meta(path: Path) -> dict[str, object]:
    """A saved vector's or edit's meta (its header's `meta`), read without the tensors."""
    from interp.store.tagged_file import read_tagged

    records, _ = read_tagged(path, "vector", load_tensors=False)
    header = records.get("workbench", {})
    return header.get("meta", {}) if isinstance(header, dict) else {}


if __name__ == "__main__":
    main()
