"""Benchmark: `workbench serve` (continuous batching, a vector per request) against plain `generate()`, same run.

Everything runs in this process on the embedded SmolLM2 (fp32), one thread
count at a time (`--threads 1 2`: both, one after the other):

- the anchor: plain transformers `model.generate()` on the same model and the
  same chat prompts (~50 tokens), 32 new tokens each (`min_new_tokens`: no early
  end), at batch 1 (each prompt alone) and batch 16 (one left-padded batch);
  also the time of one batch-16 prefill (`max_new_tokens=1`); each measured
  just before and just after the server cells it anchors (1 and 16 clients),
  and averaged, so a load that drifts during the run moves both sides;
- the server: the app in a uvicorn thread (`steering.serve.local.serving`),
  max batch 16, clients = the official `openai` package in threads (of this
  process, or with `--clients-apart` of a child process per cell, so that they
  do not share the server's GIL: bench/serve_clients.py), streaming,
  `ignore_eos` so every request makes exactly 32 tokens. A cell is N clients
  (1, 4, 16, 32) sending REQUESTS[N] requests in all (1 client: 4 one after
  the other); tokens/s = completion tokens over the cell's wall time; time to
  first token (TTFT) = request sent to first text, p50 and p95 over the cell.
  Conditions: unsteered; a different vector per request (random, norm 4,
  layer 10, positions "generated"); the same behind a probe gate at layer 8
  that lets every row through (the gate's cost); and the vector per request
  on a server without the shared-prefix cache (`--no-prefix-cache`), to
  measure what reusing the template's system turn buys.

Targets (issue #25), checked on the printed numbers: at 16 clients with a vector
per request, >= 0.9x the tokens/s of plain batch-16 `generate()`; median TTFT at
16 clients <= 2x the single-client TTFT + one batch-16 prefill; 1 client within
5% of plain batch-1 `generate()`. The machine's load is printed beside them:
on a shared machine, compare the ratios, not the absolute numbers.

Prints a markdown table for bench/RESULTS.md.

Example:
    OMP_NUM_THREADS=1 python bench/serve.py --threads 1 2
    python bench/serve.py --threads 1 --clients 1 16 --rounds 2 --clients-apart
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serve_clients import NEW_TOKENS, PROMPTS, REQUESTS, cell, client_for  # noqa: E402

from interp.models.loading import ChatModel, load_model  # noqa: E402
from interp.tasks.example import Turn  # noqa: E402
from steering.apply.generation import pad_left  # noqa: E402
from steering.artifacts.probe_gate import ProbeGate  # noqa: E402
from steering.artifacts.steering_vector import SteeringVector  # noqa: E402
from steering.export.native import export_native  # noqa: E402
from steering.serve.app import create_app  # noqa: E402
from steering.serve.engine import Engine, ServeLimits  # noqa: E402
from steering.serve.local import serving  # noqa: E402
from steering.serve.registry import VectorRegistry  # noqa: E402

LAYER, GATE_LAYER, NORM = 10, 8, 4.0
CONDITIONS = ("unsteered", "vector per request", "gated", "vector per request, no prefix cache")


def write_vectors(model: ChatModel, folder: Path, n: int) -> None:
    """`n` random vectors of norm NORM at LAYER (positions generated), as native exports, and an open gate."""
    rng = np.random.default_rng(0)
    for k in range(n):
        v = rng.normal(size=model.d_model).astype(np.float32)
        vector = SteeringVector({LAYER: NORM * v / np.linalg.norm(v)}, method="random", d_model=model.d_model,
                                model_hash=model.weights_hash, positions="generated")
        export_native(vector, folder / f"v{k}.safetensors", "add", strength=1.0)
    u = rng.normal(size=model.d_model).astype(np.float32)
    ProbeGate(u / np.linalg.norm(u), bias=0.0, threshold=-np.inf, layer=GATE_LAYER, per="last_prompt",
              meta={"model_hash": model.weights_hash}).save(folder / "gate.safetensors")


def cell_apart(url: str, condition: str, clients: int) -> dict[str, float]:
    """`cell` in a child process (bench/serve_clients.py): its clients do not share this process's GIL. The child
    imports and builds its client first; the cell starts when it is told to."""
    child = subprocess.Popen([sys.executable, str(Path(__file__).with_name("serve_clients.py")), "--url", url,
                              "--condition", condition, "--clients", str(clients)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        raise RuntimeError("the client process did not start")
    child.stdin.write("go\n")
    child.stdin.flush()
    result = json.loads(child.stdout.readline())
    child.wait(timeout=60)
    return result


def plain_generate(model: ChatModel, batch: int, new_tokens: int) -> float:
    """Seconds for one `generate()` of `batch` prompts (left-padded), greedy, exactly `new_tokens` each."""
    seqs = [model.tokenizer(model.render([Turn("user", PROMPTS[k % len(PROMPTS)])]),
                            add_special_tokens=False)["input_ids"] for k in range(batch)]
    ids, mask = pad_left(seqs, int(model.tokenizer.pad_token_id or 0))
    start = time.perf_counter()
    with torch.inference_mode():
        model.hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                          do_sample=False, pad_token_id=int(model.tokenizer.pad_token_id or 0))
    return time.perf_counter() - start


def anchor(model: ChatModel, batch: int) -> dict[str, float]:
    """Plain generate(): tokens/s at batch 1 (median over the 4 prompts), or at batch 16 and one batch-16
    prefill's seconds."""
    if batch == 1:
        return {"tps1": NEW_TOKENS / statistics.median(plain_generate(model, 1, NEW_TOKENS) for _ in range(4))}
    return {"tps16": 16 * NEW_TOKENS / plain_generate(model, 16, NEW_TOKENS), "prefill16": plain_generate(model, 16, 1)}


def run_threads(model: ChatModel, registry: VectorRegistry, threads: int, clients: Sequence[int],
                rounds: int, apart: bool = False
                ) -> tuple[dict[str, float], dict[tuple[str, int], dict[str, float]], tuple[float, float]]:
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    limits = ServeLimits(max_tokens=NEW_TOKENS, max_batch=16, max_queue=64)
    found: dict[tuple[str, int], list[dict[str, float]]] = {}
    anchors = []
    with ExitStack() as stack:
        urls = {cache: stack.enter_context(serving(create_app(Engine(model, registry, limits, "smollm2"),
                                                              prefix_cache=cache)))
                for cache in (True, False)}
        api = {cache: client_for(url) for cache, url in urls.items()}
        cell(api[True], "vector per request", 4)  # warm-up
        plain_generate(model, 1, 2)
        for r in range(rounds):
            for n in clients:
                # the anchor beside the cells it anchors, before and after them (the load drifts)
                batch = 1 if n == 1 else 16 if n == 16 else None
                if batch is not None:
                    anchors.append(anchor(model, batch))
                order = CONDITIONS[r % 4:] + CONDITIONS[:r % 4]
                for condition in order:
                    if condition.endswith("no prefix cache") and n not in (1, 16):
                        continue
                    cache = not condition.endswith("no prefix cache")
                    found.setdefault((condition, n), []).append(
                        cell_apart(urls[cache], condition.split(",")[0], n) if apart
                        else cell(api[cache], condition.split(",")[0], n))
                    print(f"# {threads} thread(s), round {r}: {condition} x{n}: {found[(condition, n)][-1]}",
                          flush=True)
                if batch is not None:
                    anchors.append(anchor(model, batch))
                    print(f"# {threads} thread(s), round {r}: plain generate batch {batch}: {anchors[-2:]}", flush=True)
        for batch, key in ((1, "tps1"), (16, "tps16")):  # clients without the anchor's own cells
            if all(key not in a for a in anchors):
                anchors.append(anchor(model, batch))
    keys = {k for a in anchors for k in a}
    plain = {k: statistics.mean(a[k] for a in anchors if k in a) for k in keys}
    cells = {key: {m: statistics.median(v[m] for v in values) for m in values[0]} for key, values in found.items()}
    return plain, cells, (load_before, os.getloadavg()[0])


def report(threads: int, plain: dict[str, float], cells: dict[tuple[str, int], dict[str, float]],
           load: tuple[float, float]) -> None:
    print(f"\n{threads} thread(s); load average (1 min) {load[0]:.1f} before, {load[1]:.1f} after\n")
    print("| what | clients | tokens/s | vs plain batch 1 | vs plain batch 16 | TTFT p50 (s) | TTFT p95 (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| plain `generate()`, batch 1 | 1 | {plain['tps1']:.1f} | 1.00 | {plain['tps1'] / plain['tps16']:.2f} "
          "| | |")
    print(f"| plain `generate()`, batch 16 | 16 | {plain['tps16']:.1f} | {plain['tps16'] / plain['tps1']:.2f} | 1.00 "
          f"| {plain['prefill16']:.2f} (one batch prefill) | |")
    for (condition, n), c in sorted(cells.items(), key=lambda kv: (CONDITIONS.index(kv[0][0]), kv[0][1])):
        print(f"| serve, {condition} | {n} | {c['tps']:.1f} | {c['tps'] / plain['tps1']:.2f} | "
              f"{c['tps'] / plain['tps16']:.2f} | {c['p50']:.2f} | {c['p95']:.2f} |")
    per, one = cells.get(("vector per request", 16)), cells.get(("vector per request", 1))
    print()
    if per is not None:
        ratio = per["tps"] / plain["tps16"]
        print(f"- 16 clients, vector per request: {ratio:.2f}x plain batch-16 tokens/s (target >= 0.90: "
              f"{'met' if ratio >= 0.9 else 'not met'})")
    if per is not None and one is not None:
        limit = 2 * one["p50"] + plain["prefill16"]
        print(f"- median TTFT at 16 clients {per['p50']:.2f} s; limit 2 x {one['p50']:.2f} s (1 client) + "
              f"{plain['prefill16']:.2f} s (batch-16 prefill) = {limit:.2f} s: {'met' if per['p50'] <= limit else 'not met'}")
    if one is not None:
        ratio = one["tps"] / plain["tps1"]
        print(f"- 1 client, vector per request: {ratio:.2f}x plain batch-1 tokens/s (target within 5%: "
              f"{'met' if ratio >= 0.95 else 'not met'})")
    plain1 = cells.get(("unsteered", 1))
    if plain1 is not None:
        print(f"- 1 client, unsteered: {plain1['tps'] / plain['tps1']:.2f}x plain batch-1 tokens/s")
    for n in (1, 16):
        on, off = cells.get(("vector per request", n)), cells.get(("vector per request, no prefix cache", n))
        if on is not None and off is not None:
            print(f"- shared-prefix cache at {n} client(s): tokens/s {on['tps'] / off['tps']:.2f}x, TTFT p50 "
                  f"{on['p50']:.2f} s vs {off['p50']:.2f} s without")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts, run in turn")
    parser.add_argument("--clients", type=int, nargs="+", default=list(REQUESTS), choices=list(REQUESTS))
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions (median reported)")
    parser.add_argument("--clients-apart", action="store_true", help="run each cell's clients in a process of "
                        "their own (as real clients are), not in threads of the server's process")
    args = parser.parse_args()
    model = load_model("smollm2")
    with tempfile.TemporaryDirectory() as tmp:
        write_vectors(model, Path(tmp), max(REQUESTS))
        registry = VectorRegistry.load(tmp, model)
        results = [(t, *run_threads(model, registry, t, args.clients, args.rounds, args.clients_apart))
                   for t in args.threads]
    where = "in a process of their own" if args.clients_apart else "in threads of the server's process"
    print(f"\n{NEW_TOKENS} new tokens per request; requests per cell by clients {REQUESTS}; {args.rounds} round(s); "
          f"clients {where}")
    for threads, plain, cells, load in results:
        report(threads, plain, cells, load)


if __name__ == "__main__":
    main()
