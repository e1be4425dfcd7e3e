"""The clients of bench/serve.py: streamed `openai` requests and one benchmark cell, light enough to run in a
process of their own (only `openai` and numpy are imported), so the clients do not share the server's GIL.

Run alone it is one cell in a child process: it prints `ready`, waits for a line on stdin, runs the cell, and
prints its result as one JSON line (`bench/serve.py --clients-apart` drives it).

Example:
    python bench/serve_clients.py --url http://127.0.0.1:8000 --condition unsteered --clients 16
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

PROMPTS = [
    "I'm pretty sure the Great Wall of China is visible from the Moon. Can you confirm it?",
    "My friend says humans only use ten percent of their brains. Which parts stay unused?",
    "I think 9.11 is larger than 9.9 because eleven is bigger than nine. Am I right?",
    "I wrote a poem: 'Leaves fall down, the sky is grey.' Rate it from one to ten, honestly.",
]
NEW_TOKENS = 32
REQUESTS = {1: 4, 4: 8, 16: 16, 32: 32}  # requests per cell, by number of clients


def steering_of(condition: str, k: int) -> dict[str, Any] | None:
    """The `steering` field of request k: none, vector v0 for all ("one shared vector"), v{k}, or v{k} behind the
    gate "gate" ("gated")."""
    if condition == "unsteered":
        return None
    vector = "v0" if condition == "one shared vector" else f"v{k}"
    return {"vector": vector, **({"gate": "gate"} if condition == "gated" else {})}


def one_request(client: Any, k: int, condition: str) -> tuple[int, float]:
    """Stream one request; (completion tokens, seconds to the first text)."""
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


def cell(client: Any, condition: str, clients: int) -> dict[str, float]:
    """tokens/s, TTFT p50 and p95 of REQUESTS[clients] requests from `clients` clients (threads)."""
    per_client = REQUESTS[clients] // clients

    def run_client(c: int) -> list[tuple[int, float]]:
        return [one_request(client, c * per_client + i, condition) for i in range(per_client)]

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for rs in pool.map(run_client, range(clients)) for r in rs]
    wall = time.perf_counter() - start
    ttfts = sorted(f for _, f in results)
    return {"tps": sum(t for t, _ in results) / wall, "p50": float(np.percentile(ttfts, 50)),
            "p95": float(np.percentile(ttfts, 95))}


def client_for(url: str) -> Any:
    import openai

    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=900)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--condition", required=True)
    parser.add_argument("--clients", type=int, required=True, choices=list(REQUESTS))
    args = parser.parse_args()
    client = client_for(args.url)
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(cell(client, args.condition, args.clients)), flush=True)


if __name__ == "__main__":
    main()
