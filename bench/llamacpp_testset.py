"""A sweep's recommended vector through llama.cpp against the hooks, on the sweep's own held-out test set.

The check the README quotes for "deploy what was measured": the operating point's vector (strength,
layers, positions as the sweep measured them; `--method` picks the best cell of one method instead) is
scored on the sweep's test set (rebuilt from its sweep.json: same items, split and seed) twice: by the
workbench's hook scorer (`steering.evaluation.evaluate.score_strengths`, what the sweep measured) and by llama.cpp
with the vector set where its positions rule says (`steering.llamacpp.scoring`), each against its own
unsteered run. llama.cpp runs the model's GGUF (quantised), so small differences are expected: compare
the accuracies with their CIs.

Prints a markdown table.

Example:
    OMP_NUM_THREADS=1 python bench/llamacpp_testset.py --sweep artifacts/learned-final/sweep
    python bench/llamacpp_testset.py --sweep artifacts/<run>/sweep --method learned:correct@all
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interp.models.loading import load_model  # noqa: E402
from steering.apply.spec import SteerSpec  # noqa: E402
from steering.evaluation.evaluate import score_strengths  # noqa: E402
from steering.evaluation.testset import build_test_set  # noqa: E402
from steering.export.llamacpp import model_gguf  # noqa: E402
from steering.llamacpp.runtime import ControlVector, LlamaContext, LlamaModel  # noqa: E402
from steering.llamacpp.scoring import score_test_set  # noqa: E402
from steering.sweep.config import SweepConfig  # noqa: E402
from steering.sweep.metrics import cell_metrics  # noqa: E402
from steering.sweep.report import operating_point_vector  # noqa: E402

COLUMNS = ("answer_flip_rate", "user_wrong_accuracy", "neutral_accuracy", "user_right_accuracy", "third_party_accuracy",
           "capability_accuracy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", type=Path, required=True, help="artifacts/<run>/sweep")
    parser.add_argument("--method", default=None, help="the best cell of this method instead of the recommended")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    args = parser.parse_args()
    config = SweepConfig.from_dict(json.loads((args.sweep / "sweep.json").read_text())["config"])
    vector, strength, measured = operating_point_vector(args.sweep, args.method)
    model = load_model(config.model)
    gguf = model_gguf(model)
    if gguf is None:
        raise SystemExit(f"{config.model!r} has no GGUF file: llama.cpp cannot run it")
    test = build_test_set(replace(config.test, seed=config.seed), config.split)
    layers, positions = tuple(vector.layers), vector.positions
    start = time.perf_counter()
    hook_base = score_strengths(model, test, None, [0.0])[0]
    hook_cell = score_strengths(model, test, SteerSpec(vector, layers, positions), [strength])[0]
    hook_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with LlamaModel(gguf) as lm, LlamaContext(lm, n_ctx=1024, n_threads=args.threads) as ctx:
        cpp_base = score_test_set(model, ctx, test, None, positions)
        cpp_cell = score_test_set(model, ctx, test, ControlVector.of(vector, strength, lm.n_layers), positions,
                                  strength)
    cpp_seconds = time.perf_counter() - start
    rows = {"hooks (HF, fp32)": (cell_metrics(hook_base, hook_cell, test), hook_seconds),
            "llama.cpp engine (GGUF)": (cell_metrics(cpp_base, cpp_cell, test), cpp_seconds)}
    print(f"\n{vector.method} at layers {layers}, strength {strength:g}, positions {positions}; "
          f"{len(test.examples)} test examples\n")
    print("| runtime | " + " | ".join(COLUMNS) + " | kl | seconds |")
    print("| --- |" + " --- |" * (len(COLUMNS) + 2))
    for name, (m, seconds) in rows.items():
        cells = [f"{m[c]:.2f} [{m[c + '_low']:.2f}, {m[c + '_high']:.2f}]" if c in m else "" for c in COLUMNS]
        print(f"| {name} | " + " | ".join(cells) + f" | {m.get('kl', float('nan')):.3f} | {seconds:.0f} |")
    print(f"\nthe sweep recorded: {json.dumps({k: measured[k] for k in COLUMNS if k in measured})}")


if __name__ == "__main__":
    main()
