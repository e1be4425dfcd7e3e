"""Caching throughput vs a plain HF forward, and peak memory vs store size.

Run: `python bench/capture.py [--n 200] [--reps 3]` (embedded model, 2 threads).

(a) plain HF forward (logits, no caching) on fixed batches; also the decoder body
    alone (`model.hf.model`, no final norm or lm_head: SmolLM2's 49k-word lm_head
    costs about 8 layers), the fair floor for caching residual sites;
(b) each backend caching all 30 `blocks.L.hook_resid_post` at `last_prompt`,
    the same batches, the same process, interleaved repetitions (median).
Ratios are tokens/s of (b) over (a). Then peak RSS of a full `capture()` of
200 vs 2,000 examples, each in a fresh subprocess.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interp.capture.backends import Batch, make_backend  # noqa: E402
from interp.capture.collect import _gather, _plan, make_batch, validate  # noqa: E402
from interp.capture.positions import parse_positions  # noqa: E402
from interp.models.loading import load_model  # noqa: E402
from interp.sites import expand_sites  # noqa: E402


def bench_examples(n: int):  # type: ignore[no-untyped-def]
    from interp.tasks import build_task

    examples = build_task("answer", seed=0)
    return (examples * (n // len(examples) + 1))[:n]


def throughput(n: int, reps: int, batch_size: int) -> dict[str, float]:
    model = load_model("smollm2")
    examples = bench_examples(n)
    positions = parse_positions("last_prompt")
    encoded = validate(model, examples, positions)
    order = sorted(range(len(examples)), key=lambda i: len(encoded[i]))
    batches = []
    for b0 in range(0, len(order), batch_size):
        idx = order[b0 : b0 + batch_size]
        batch, offsets = make_batch([encoded[i] for i in idx], model.tokenizer.pad_token_id, "right")
        batches.append((batch, _plan([(i, examples[i], encoded[i]) for i in idx], offsets, positions)))
    tokens = sum(int(b.attention_mask.sum()) for b, _ in batches)
    sites = expand_sites("blocks.*.hook_resid_post", model.n_layers)
    backends = {name: make_backend(name) for name in ("hooks", "nnsight", "tl")}

    def plain() -> None:
        with torch.inference_mode():
            for b, _ in batches:
                model.hf(input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=b.position_ids,
                         use_cache=False)

    def cached(name: str):  # type: ignore[no-untyped-def]
        def run() -> None:
            for b, plan in batches:
                acts = backends[name].activations(model, Batch(b.input_ids, b.attention_mask, b.position_ids), sites)
                for s in sites:
                    _gather(acts[s], plan).numpy()
        return run

    def body() -> None:  # the decoder without the final norm and lm_head: what a cache of resid sites needs
        with torch.inference_mode():
            for b, _ in batches:
                model.hf.model(input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=b.position_ids,
                               use_cache=False)

    runs = {"plain": plain, "body": body, **{name: cached(name) for name in backends}}
    for fn in runs.values():  # warm-up (also boots the TL bridge and nnsight wrapper)
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: tokens / statistics.median(ts) for name, ts in times.items()} | {"tokens": tokens}


def peak_rss_child(n: int) -> float:
    root = str(Path(__file__).resolve().parents[1])
    code = (
        f"import resource, sys, tempfile; sys.path.insert(0, {root!r})\n"
        "from bench.capture import bench_examples\n"
        "from interp.models.loading import load_model\nfrom interp.capture.collect import capture, CaptureConfig\n"
        "m = load_model('smollm2')\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        f"    capture(m, bench_examples({n}), 'blocks.*.hook_resid_post', 'last_prompt', d,"
        " config=CaptureConfig((), (), batch_size=16, shard_size=256))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    tps = throughput(args.n, args.reps, args.batch_size)
    print(f"threads={torch.get_num_threads()} examples={args.n} tokens/pass={tps['tokens']} reps={args.reps}")
    print("| run | tokens/s | ratio to plain forward | ratio to decoder body |")
    print("| --- | --- | --- | --- |")
    for name in ("plain", "body", "hooks", "nnsight", "tl"):
        print(f"| {name} | {tps[name]:.0f} | {tps[name] / tps['plain']:.3f} | {tps[name] / tps['body']:.3f} |")
    if not args.skip_memory:
        small, large = peak_rss_child(200), peak_rss_child(2000)
        print(f"peak RSS caching 200 examples: {small:.0f} MiB; 2,000 examples: {large:.0f} MiB; ratio {large / small:.2f}")
    print(json.dumps({k: round(v, 1) for k, v in tps.items()}))


if __name__ == "__main__":
    main()
