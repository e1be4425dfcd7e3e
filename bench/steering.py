"""Benchmark: the cost of steering hooks, and a batched strength sweep, on the embedded SmolLM2.

(a) greedy generation, tokens/s, steered (`add` at 3 layers, positions all)
    against unsteered, same prompts, each pair back to back (order
    alternating), median of the paired time ratios; target overhead <= 3 %.
(b) a K=8 strength sweep scored in one forward over 8 rows (per-row
    strengths) against 8 sequential forwards; target >= 6x faster.

Prompts are chat-rendered sycophancy-style questions of ~60-100 tokens.
Prints markdown lines for bench/RESULTS.md.

Example:
    python bench/steering.py               # defaults: 3 rounds, 16 new tokens, 1 thread
    python bench/steering.py --rounds 5 --new-tokens 32 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interp.models.loading import ChatModel, load_model  # noqa: E402
from interp.tasks.example import Turn  # noqa: E402
from steering.apply.steer_hooks import steer  # noqa: E402
from steering.artifacts.steering_vector import SteeringVector  # noqa: E402

PROMPTS = [
    "I'm pretty sure that the Great Wall of China is clearly visible from the Moon with the naked eye; my "
    "geography teacher told us so years ago and I have repeated it ever since. Can you confirm that this is "
    "true and explain briefly why astronauts are able to see it from so far away?",
    "My friend insists that humans only use ten percent of their brains, and honestly I agree with him because "
    "it explains why some people learn so much faster than others. Could you tell me which parts of the brain "
    "stay unused, and how a person might train themselves to unlock the rest of it?",
    "I wrote this short poem about autumn and I think it is the best thing I have ever written: 'Leaves fall "
    "down, the sky is grey, the wind is cold, I want to stay.' Please rate it from one to ten and tell me "
    "honestly what a publisher would think about it if I sent it to them tomorrow.",
    "Which is larger, 9.11 or 9.9? I believe 9.11 is larger because eleven is bigger than nine, and my "
    "calculator must be broken since it keeps saying the opposite. Answer with a short explanation of why "
    "9.11 is the larger number, so that I can show it to my study group tonight.",
]
ANSWER = " I'm sorry, but that is not correct. The answer is the other one, and here is why it matters."
STEER_LAYERS = (8, 10, 12)
SWEEP = [-8.0, -6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 8.0]


def random_vector(model: ChatModel, layers: tuple[int, ...], norm: float, seed: int) -> SteeringVector:
    rng = np.random.default_rng(seed)
    directions = {}
    for layer in layers:
        v = rng.normal(size=model.d_model).astype(np.float32)
        directions[layer] = v / np.linalg.norm(v) * norm
    return SteeringVector(directions, method="random", d_model=model.d_model)


def encode(model: ChatModel, text: str) -> dict[str, torch.Tensor]:
    enc = model.tokenizer([text], return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_generation(
    model: ChatModel, vector: SteeringVector, rounds: int, new_tokens: int
) -> tuple[float, float, float]:
    """Greedy generation, batch 1: median tokens/s (unsteered, steered) and the median paired time ratio.

    Each prompt is generated unsteered and steered back to back (order
    alternating), so load from other processes hits both sides of a pair.
    """
    batches = [encode(model, model.render([Turn("user", p)])) for p in PROMPTS]
    pad = model.tokenizer.pad_token_id

    def plain(batch: dict[str, torch.Tensor]) -> None:
        model.hf.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                          pad_token_id=pad)

    def steered(batch: dict[str, torch.Tensor]) -> None:
        with steer(model, vector, 1.0, positions="all"):
            plain(batch)

    plain_tps, steered_tps, ratios = [], [], []
    with torch.inference_mode():
        plain(batches[0])  # warm-up
        steered(batches[0])
        for r in range(rounds):
            for i, batch in enumerate(batches):
                if (r + i) % 2 == 0:
                    t_plain, t_steer = timed(partial(plain, batch)), timed(partial(steered, batch))
                else:
                    t_steer, t_plain = timed(partial(steered, batch)), timed(partial(plain, batch))
                plain_tps.append(new_tokens / t_plain)
                steered_tps.append(new_tokens / t_steer)
                ratios.append(t_steer / t_plain)
    return statistics.median(plain_tps), statistics.median(steered_tps), statistics.median(ratios)


def bench_hook_cost(model: ChatModel, vector: SteeringVector, repeats: int = 2000) -> float:
    """Microseconds the steering hooks add to one cached decoding step (batch 1): exact, load-insensitive.

    Runs the registered hooks' bodies (the stack pre-hook and one `add` per
    steered layer) on a decoding step's tensors, `repeats` times.
    """
    from transformers import DynamicCache

    batch = encode(model, model.render([Turn("user", PROMPTS[0])]))
    cache = DynamicCache(config=model.hf.config)
    with torch.inference_mode():
        model.hf(**batch, past_key_values=cache, use_cache=True)
        step = {"input_ids": batch["input_ids"][:, -1:], "past_key_values": cache,
                "attention_mask": torch.ones(1, batch["input_ids"].shape[1] + 1, dtype=torch.long)}
        h = torch.randn(1, 1, model.d_model)  # [batch, pos, d_model]
        with steer(model, vector, 1.0, positions="all") as handle:
            start = time.perf_counter()
            for _ in range(repeats):
                handle.begin_call(model.hf, (), step)
                for site in handle.plan.sites:
                    handle.apply(site, h)
            elapsed = time.perf_counter() - start
    return elapsed / repeats * 1e6


def bench_sweep(model: ChatModel, vector: SteeringVector, rounds: int) -> tuple[float, float, int]:
    """Median seconds (batched, sequential) to score len(SWEEP) strengths; and the tokens per row."""
    text = model.render([Turn("user", PROMPTS[0])]) + ANSWER
    one = encode(model, text)
    rows = {k: v.expand(len(SWEEP), -1).contiguous() for k, v in one.items()}

    def batched() -> None:
        with steer(model, vector, SWEEP):
            model.hf(**rows, use_cache=False)

    def sequential() -> None:
        for s in SWEEP:
            with steer(model, vector, s):
                model.hf(**one, use_cache=False)

    times_b, times_s = [], []
    with torch.inference_mode():
        batched()
        sequential()
        for _ in range(rounds):
            times_b.append(timed(batched))
            times_s.append(timed(sequential))
    return statistics.median(times_b), statistics.median(times_s), int(one["input_ids"].shape[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    model = load_model("smollm2")
    vector = random_vector(model, STEER_LAYERS, norm=8.0, seed=args.seed)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lengths = [int(encode(model, model.render([Turn("user", p)]))["input_ids"].shape[1]) for p in PROMPTS]
    load = os.getloadavg()[0]
    print(f"SmolLM2-135M fp32 on CPU, {cores} cores, torch threads {threads}, "
          f"load average {load:.2f}; prompts of {min(lengths)}-{max(lengths)} tokens")

    plain, steered, ratio = bench_generation(model, vector, args.rounds, args.new_tokens)
    overhead = (ratio - 1) * 100
    pairs = args.rounds * len(PROMPTS)
    print(f"(a) greedy generation, batch 1, {args.new_tokens} new tokens, {pairs} paired runs: "
          f"unsteered {plain:.2f} tok/s, steered {steered:.2f} tok/s (medians); median paired time ratio "
          f"{ratio:.3f}, overhead {overhead:+.1f} % (target <= 3 %: {'met' if overhead <= 3 else 'NOT met'})")

    hook_us = bench_hook_cost(model, vector)
    step_ms = 1000 / plain
    print(f"    hook bodies per decoding step: {hook_us:.0f} us = {hook_us / (step_ms * 10):.2f} % of a "
          f"{step_ms:.0f} ms step (the exact part of the overhead; the rest of the paired ratio is noise)")

    t_batched, t_seq, n_tok = bench_sweep(model, vector, args.rounds)
    speedup = t_seq / t_batched
    print(f"(b) K={len(SWEEP)} sweep, {n_tok} tokens per row: batched {t_batched * 1000:.0f} ms, sequential "
          f"{t_seq * 1000:.0f} ms, batched is {speedup:.2f}x faster (target >= 6x: {'met' if speedup >= 6 else 'NOT met'})")
    print()
    print(f"| steering: greedy generation, add at layers {list(STEER_LAYERS)}, positions all, batch 1, "
          f"{args.new_tokens} new tokens, prompts of {min(lengths)}-{max(lengths)} tokens | "
          f"{plain:.2f} -> {steered:.2f} tok/s, overhead {overhead:+.1f} % (median of {pairs} paired runs; "
          f"target <= 3 %: {'met' if overhead <= 3 else 'not met'}); hook bodies {hook_us:.0f} us/step "
          f"= {hook_us / (step_ms * 10):.2f} % | {threads} thread(s), load {load:.1f} |")
    print(f"| steering: K={len(SWEEP)} strength sweep, one batched forward vs {len(SWEEP)} sequential, "
          f"{n_tok} tokens | {t_batched * 1000:.0f} ms vs {t_seq * 1000:.0f} ms, {speedup:.2f}x (target >= 6x: "
          f"{'met' if speedup >= 6 else 'not met'}, median of {args.rounds}) | {threads} thread(s), load {load:.1f} |")


if __name__ == "__main__":
    main()
