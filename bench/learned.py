"""Benchmark: training a one-layer learned vector on the embedded SmolLM2 (issue target: <= 3 minutes on 2 cores).

Measured in one run:
(a) preparation: the frozen unsteered prompt KV and the unsteered references of every training and
    validation example (`steering.methods.learned._prepare`);
(b) training: `learn_vector` end to end (preparation included) with the given settings;
(c) the baseline: one unsteered scoring pass over the same examples with the sweep's scorer
    (`score_choices_cached`, full prompts), i.e. what it costs just to read the model's answers once.
Ratios: training / baseline pass, and seconds per optimiser step.

The machine is shared: run it when nothing else is, and report the load average printed with the numbers.

Example:
    python bench/learned.py --threads 2 --steps 40
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interp.models.loading import load_model  # noqa: E402
from interp.scoring.frozen import score_choices_cached  # noqa: E402
from steering.evaluation.splits import PairSplit  # noqa: E402
from steering.methods.learned import LearnConfig, _prepare, learn_vector  # noqa: E402
from steering.methods.learned_data import learning_groups  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--layer", type=int, default=12)
    parser.add_argument("--n-pairs", type=int, default=48)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    model = load_model("smollm2")
    split = PairSplit(0, 0.3)
    config = LearnConfig(layers=(args.layer,), steps=args.steps, n_pairs=args.n_pairs, patience=args.steps)
    train, val = learning_groups(split, config.tasks, config.n_pairs, config.seed, config.wording, (),
                                 config.val_fraction)
    examples = [ex for g in (*train, *val) for ex in g.examples.values()]
    start = time.perf_counter()
    score_choices_cached(model, examples, batch_size=config.batch_size)
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    _prepare(model, [*train, *val], config)
    prepare = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        vector = learn_vector(model, split, dataclasses.replace(config), folder=tmp)
        total = time.perf_counter() - start
    steps = vector.meta["steps_run"]
    per_step = (total - prepare) / max(steps, 1)
    print(f"| learned vector, layer {args.layer}, {len(train)}+{len(val)} groups ({len(examples)} prompts), "
          f"{steps} steps, {args.threads} threads, load {load:.1f} | baseline pass {baseline:.1f} s | "
          f"preparation {prepare:.1f} s | training {total:.1f} s ({total / 60:.1f} min) | "
          f"{per_step:.2f} s/step | training / baseline pass {total / baseline:.1f}x |")


if __name__ == "__main__":
    main()
