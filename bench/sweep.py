"""Benchmark: wall time of the demo sweep (`workbench sweep --quick`) on the embedded SmolLM2.

(a) the `--quick` preset end to end in a fresh folder: vectors (activation
    capture + fit), the unsteered baseline, the steered cells, the report;
(b) K=8 strengths (positions "generated"): K sequential passes of `interp.scoring.reference`
    (one sequence per choice, the naive loop; the tests' `reference_strengths`) against ONE batched pass of the
    sweep's scorer on the frozen unsteered prompt prefix (what the sweep runs),
    with K sequential frozen passes in between to separate what batching buys
    from what reusing the unsteered prefix buys (issue target: >= 6x).

Prints markdown lines for bench/RESULTS.md. The machine is shared: run it
when nothing else is, and report the load average printed with the numbers.

Example:
    python bench/sweep.py                 # 1 thread
    python bench/sweep.py --threads 2 --skip-scorers
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interp.models.loading import ChatModel, load_model  # noqa: E402
from steering.apply.spec import SteerSpec  # noqa: E402
from steering.artifacts.steering_vector import SteeringVector  # noqa: E402
from steering.evaluation.evaluate import freeze, prompt_tokens, score_strengths  # noqa: E402
from steering.evaluation.testset import build_test_set  # noqa: E402
from steering.sweep import QUICK, run_sweep, sweep_strengths  # noqa: E402
from steering.sweep.report import write_report  # noqa: E402
from tests.steering.builders import reference_strengths  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-scorers", action="store_true", help="only time the quick sweep")
    parser.add_argument("--k", type=int, default=8, help="strengths in the K-strength comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    model = load_model("smollm2")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sweep"
        start = time.perf_counter()
        result = run_sweep(QUICK, folder, model)
        write_report(folder, result.table, result.vectors, QUICK.gain, QUICK.loss, QUICK.budget)
        wall = time.perf_counter() - start
        curves = len(QUICK.methods) * len(QUICK.layers) * len(QUICK.positions) * (2 if QUICK.gate == "both" else 1)
        cells = curves * len(sweep_strengths(QUICK))
        steered = cells - curves
        print(f"- quick sweep ({cells} cells, {steered} steered, gate {QUICK.gate}, {args.threads} thread(s), "
              f"load {load:.1f}): {wall:.0f} s wall")
        if not args.skip_scorers:
            bench_k_strengths(model, result.vectors, args.k)


def bench_k_strengths(model: ChatModel, vectors: dict[str, SteeringVector], k: int) -> None:
    """K strengths (positions "generated") on the quick test set, four ways, each timed once after a warm-up.

    - naive: K separate passes of `interp.scoring.reference` (one sequence per choice), the way a notebook would loop;
    - sequential + frozen: K separate passes of the sweep's scorer on the frozen unsteered prompt prefix;
    - batched + frozen: ONE pass with K per-row strengths on the frozen prefix (what `workbench sweep` runs);
    - the freeze itself (once per sweep, shared by every cell of every vector and layer).
    """
    test = build_test_set(replace(QUICK.test, seed=QUICK.seed), QUICK.split)
    vector = next(iter(vectors.values()))
    spec = SteerSpec(vector, (QUICK.layers[0],), "generated")
    tokens = prompt_tokens(model, test.examples)
    strengths = [float(s) for s in np.linspace(-16, 16, k + 1) if s != 0][:k]
    reference_strengths(model, test, spec, strengths[:1], QUICK.batch_size)  # warm-up
    t0 = time.perf_counter()
    frozen = freeze(model, test, tokens, QUICK.batch_size)
    freeze_s = time.perf_counter() - t0
    times = {}
    t0 = time.perf_counter()
    naive = [reference_strengths(model, test, spec, [s], QUICK.batch_size)[0] for s in strengths]
    times["naive"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in strengths:
        score_strengths(model, test, spec, [s], QUICK.batch_size, tokens, frozen)
    times["sequential"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched = score_strengths(model, test, spec, strengths, QUICK.batch_size, tokens, frozen)
    times["batched"] = time.perf_counter() - t0
    worst = max(float(np.abs(a.rows["margin"].to_numpy() - b.rows["margin"].to_numpy())[
        ~np.isnan(a.rows["margin"].to_numpy())].max()) for a, b in zip(naive, batched, strict=True))
    n = len(test.examples)
    print(f"- K={k} strengths, positions generated, quick test set ({n} prompts), {torch.get_num_threads()} thread(s), "
          f"load {os.getloadavg()[0]:.1f}: naive K x interp.scoring.reference {times['naive']:.1f} s; K x frozen-prefix scorer "
          f"{times['sequential']:.1f} s; one batched pass on the frozen prefix {times['batched']:.1f} s "
          f"(+ freeze {freeze_s:.1f} s once per sweep). Speed-up batched vs naive: "
          f"{times['naive'] / times['batched']:.1f}x ({times['naive'] / (times['batched'] + freeze_s):.1f}x counting "
          f"the freeze); batching alone (vs K frozen passes): {times['sequential'] / times['batched']:.2f}x; "
          f"max |margin difference| naive vs batched {worst:.1e}")

if __name__ == "__main__":
    main()
