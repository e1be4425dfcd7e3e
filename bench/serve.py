"""Benchmark: `workbench serve` throughput and latency with per-request steering, on the embedded SmolLM2.

The server runs in this process (uvicorn in a thread, the local batcher,
max batch 16) and the clients are the official `openai` package in threads,
streaming. A (concurrency, condition) cell sends requests of exactly 32 new
tokens (greedy, `ignore_eos`: steering changes the answers, and answers of
different lengths would confound the comparison) from 1 client x 4 requests
(one by one), 4 x 2 or 16 x 1, and
reports aggregate generated tokens/s (completion tokens over the cell's wall
time) and the median time to first token. Conditions:

(a) unsteered;
(b) one shared vector (layer 10, every request);
(c) a different vector per request (16 vectors at layer 10);
(d) gated: (b) behind a probe gate at layer 8 (threshold -inf, so the same rows are steered and the
    difference is the gate's cost).

Targets (issue #18): (c) within 10% of (a) at 16 clients; 16 clients at least 3x one by one.
Prints markdown lines for bench/RESULTS.md.

On a shared, loaded machine use one thread: two OpenMP threads on two busy
cores ran 10x slower than one (measured: 0.5 vs 5.9 tok/s, batch 1, load 5).

Example:
    OMP_NUM_THREADS=1 python bench/serve.py --threads 1 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interp.models.loading import ChatModel, load_model  # noqa: E402
from steering.artifacts.probe_gate import ProbeGate  # noqa: E402
from steering.artifacts.steering_vector import SteeringVector  # noqa: E402
from steering.export.native import export_native  # noqa: E402
from steering.serve.app import create_app  # noqa: E402
from steering.serve.engine import Engine, ServeLimits  # noqa: E402
from steering.serve.local import serving  # noqa: E402
from steering.serve.registry import VectorRegistry  # noqa: E402

PROMPTS = [
    "I'm pretty sure the Great Wall of China is visible from the Moon. Can you confirm it?",
    "My friend says humans only use ten percent of their brains. Which parts stay unused?",
    "I think 9.11 is larger than 9.9 because eleven is bigger than nine. Am I right?",
    "I wrote a poem: 'Leaves fall down, the sky is grey.' Rate it from one to ten, honestly.",
]
LAYER, GATE_LAYER, NORM = 10, 8, 4.0
NEW_TOKENS = 32
REQUESTS = {1: 4, 4: 8, 16: 16}  # requests per cell, by number of clients
CONCURRENCY = tuple(REQUESTS)
CONDITIONS = ("unsteered", "shared vector", "vector per request", "gated")


def write_vectors(model: ChatModel, folder: Path, n: int) -> None:
    """`n` random unit-direction vectors of norm NORM at LAYER, as native exports, and an always-open gate."""
    rng = np.random.default_rng(0)
    for k in range(n):
        v = rng.normal(size=model.d_model).astype(np.float32)
        vector = SteeringVector({LAYER: NORM * v / np.linalg.norm(v)}, method="random", d_model=model.d_model,
                                model_hash=model.weights_hash, positions="generated")
        export_native(vector, folder / f"v{k}.safetensors", "add", strength=1.0)
    u = rng.normal(size=model.d_model).astype(np.float32)
    ProbeGate(u / np.linalg.norm(u), bias=0.0, threshold=-np.inf, layer=GATE_LAYER, per="last_prompt",
              meta={"model_hash": model.weights_hash}).save(folder / "gate.safetensors")


def steering_of(condition: str, k: int) -> dict | None:
    return {"unsteered": None, "shared vector": {"vector": "v0"}, "vector per request": {"vector": f"v{k}"},
            "gated": {"vector": "v0", "gate": "gate"}}[condition]


def one_request(client, k: int, condition: str) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Stream one request; returns (completion tokens, seconds to the first content)."""
    steering = steering_of(condition, k)
    start, first, tokens = time.perf_counter(), None, 0
    stream = client.chat.completions.create(
        model="smollm2", max_tokens=NEW_TOKENS, temperature=0, stream=True,
        messages=[{"role": "user", "content": PROMPTS[k % len(PROMPTS)]}],
        extra_body={"ignore_eos": True, **({"steering": steering} if steering else {})})
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - start
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    return tokens, first if first is not None else float("nan")


def cell(client, condition: str, clients: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Aggregate tokens/s and median time to first token of REQUESTS[clients] requests from `clients` clients."""
    per_client = REQUESTS[clients] // clients

    def run_client(c: int) -> list[tuple[int, float]]:
        return [one_request(client, c * per_client + i, condition) for i in range(per_client)]

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for rs in pool.map(run_client, range(clients)) for r in rs]
    wall = time.perf_counter() - start
    return sum(t for t, _ in results) / wall, statistics.median(f for _, f in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions (median reported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import openai

    model = load_model("smollm2")
    with tempfile.TemporaryDirectory() as tmp:
        write_vectors(model, Path(tmp), max(REQUESTS.values()))
        limits = ServeLimits(max_tokens=NEW_TOKENS, max_batch=16, max_queue=64, batch_window_ms=5.0)
        engine = Engine(model, VectorRegistry.load(tmp, model), limits, name="smollm2")
        load_before = os.getloadavg()
        with serving(create_app(engine)) as url:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
            cell(client, "vector per request", 4)  # warm-up
            found: dict[tuple[str, int], list[tuple[float, float]]] = {}
            for r in range(args.rounds):
                for clients in CONCURRENCY:
                    order = CONDITIONS[r % 4:] + CONDITIONS[:r % 4]
                    for condition in order:
                        found.setdefault((condition, clients), []).append(cell(client, condition, clients))
                        print(f"# round {r} {condition} x{clients}: {found[(condition, clients)][-1]}", flush=True)
        load_after = os.getloadavg()
    tps = {key: statistics.median(v[0] for v in values) for key, values in found.items()}
    ttft = {key: statistics.median(v[1] for v in values) for key, values in found.items()}
    print(f"\nload average before {load_before[0]:.1f}, after {load_after[0]:.1f} (1 min); {args.threads} threads; "
          f"{args.rounds} round(s); requests per cell by clients {REQUESTS}, {NEW_TOKENS} new tokens each\n")
    print("| condition | clients | tokens/s | vs unsteered | time to first token (s, median) |")
    print("| --- | --- | --- | --- | --- |")
    for clients in CONCURRENCY:
        for condition in CONDITIONS:
            key = (condition, clients)
            ratio = tps[key] / tps[("unsteered", clients)]
            print(f"| {condition} | {clients} | {tps[key]:.1f} | {ratio:.2f} | {ttft[key]:.2f} |")
    print()
    for condition in CONDITIONS:
        print(f"- {condition}: 16 clients / one by one = {tps[(condition, 16)] / tps[(condition, 1)]:.2f}x")
    c16 = tps[("vector per request", 16)] / tps[("unsteered", 16)]
    print(f"- vector per request vs unsteered at 16 clients: {c16:.2f} (target >= 0.90)")


if __name__ == "__main__":
    main()
