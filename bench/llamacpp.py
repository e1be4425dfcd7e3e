"""Benchmark: `workbench serve --engine llamacpp` against the torch engine, same model, same run.

Both servers run in this process on the embedded SmolLM2 (torch: the
dequantised fp32 HF model; llama.cpp: its Q4_1 GGUF), each in a uvicorn thread
(`steering.serve.local.serving`), max batch 16, with the same thread count
(`--threads`, default 1). Clients are the official `openai` package in
threads, streaming, `ignore_eos` so every request makes exactly NEW_TOKENS
tokens. A cell is N clients (1 or 16) sending REQUESTS[N] requests (1 client:
4 one after the other); tokens/s = completion tokens over the cell's wall
time; time to first token (TTFT) = request sent to first text, p50 and p95.
Conditions: unsteered; one vector shared by every request (random, norm 4 at
layers 8-12, positions "generated"); a different vector per request (the same
kind, one per request: llama.cpp then decodes each row on its own, one
`llama_decode` per vector per step, since a context holds one control vector).
The engines alternate cell by cell (`--rounds 2`: twice, the order reversed),
so a load that drifts moves both; the load average is printed beside the table.

Prints a markdown table for bench/RESULTS.md.

Example:
    OMP_NUM_THREADS=1 python bench/llamacpp.py
    python bench/llamacpp.py --threads 2 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serve_clients import NEW_TOKENS, REQUESTS, cell, client_for, one_request  # noqa: E402

from interp.models.loading import ChatModel, load_model  # noqa: E402
from steering.artifacts.steering_vector import SteeringVector  # noqa: E402
from steering.export.native import export_native  # noqa: E402
from steering.serve.app import create_app  # noqa: E402
from steering.serve.engine import Engine, ServeLimits  # noqa: E402
from steering.serve.llamacpp_backend import llamacpp_backend  # noqa: E402
from steering.serve.local import serving  # noqa: E402
from steering.serve.registry import VectorRegistry  # noqa: E402

LAYERS, NORM = (8, 9, 10, 11, 12), 4.0
CLIENTS = (1, 16)  # cells: 1 client (REQUESTS[1] requests, one after the other) and 16
CONDITIONS = ("unsteered", "one shared vector", "vector per request")
ENGINES = ("torch", "llamacpp")


def write_vectors(model: ChatModel, folder: Path, n: int) -> None:
    """`n` random vectors, norm NORM at each of LAYERS, positions "generated", as native exports."""
    rng = np.random.default_rng(0)
    for k in range(n):
        directions = {}
        for layer in LAYERS:
            v = rng.normal(size=model.d_model).astype(np.float32)
            directions[layer] = NORM * v / np.linalg.norm(v)
        vector = SteeringVector(directions, method="random", d_model=model.d_model, model_hash=model.weights_hash,
                                positions="generated")
        export_native(vector, folder / f"v{k}.safetensors", "add", strength=1.0)


def run(model: ChatModel, registry: VectorRegistry, threads: int, rounds: int
        ) -> tuple[dict[tuple[str, str, int], dict[str, float]], tuple[float, float]]:
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    limits = ServeLimits(max_tokens=NEW_TOKENS, max_batch=16, max_queue=64)
    found: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    with ExitStack() as stack:
        api = {}
        for name in ENGINES:
            engine = Engine(model, registry, limits, "smollm2")
            backend = llamacpp_backend(engine, threads) if name == "llamacpp" else None
            if backend is not None:
                stack.callback(backend.close)
            url = stack.enter_context(serving(create_app(engine, backend)))
            api[name] = client_for(url)
            one_request(api[name], 0, "vector per request")  # warm-up
        for r in range(rounds):
            for n in CLIENTS:
                for condition in CONDITIONS:
                    for name in ENGINES if r % 2 == 0 else ENGINES[::-1]:
                        found.setdefault((name, condition, n), []).append(cell(api[name], condition, n))
                        print(f"# round {r}: {name} {condition} x{n}: {found[(name, condition, n)][-1]}", flush=True)
    cells = {key: {m: statistics.median(v[m] for v in values) for m in values[0]} for key, values in found.items()}
    return cells, (load_before, os.getloadavg()[0])


def report(threads: int, cells: dict[tuple[str, str, int], dict[str, float]], load: tuple[float, float]) -> None:
    print(f"\n{threads} thread(s) per engine; load average (1 min) {load[0]:.1f} before, {load[1]:.1f} after\n")
    print("| clients | condition | engine | tokens/s | llama.cpp / torch | TTFT p50 (s) | TTFT p95 (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in CLIENTS:
        for condition in CONDITIONS:
            base = cells[("torch", condition, n)]["tps"]
            for name in ENGINES:
                c = cells[(name, condition, n)]
                ratio = f"{c['tps'] / base:.2f}" if name == "llamacpp" else ""
                print(f"| {n} | {condition} | {name} | {c['tps']:.1f} | {ratio} | {c['p50']:.2f} | {c['p95']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="threads per engine (default 1)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds over every cell (median reported)")
    args = parser.parse_args()
    model = load_model("smollm2")
    with tempfile.TemporaryDirectory() as tmp:
        write_vectors(model, Path(tmp), max(REQUESTS[n] for n in CLIENTS))
        registry = VectorRegistry.load(Path(tmp), model)
        cells, load = run(model, registry, args.threads, args.rounds)
    report(args.threads, cells, load)


if __name__ == "__main__":
    main()
