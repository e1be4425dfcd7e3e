"""Load and faults: 64 concurrent clients mixing unsteered, steered, gated and malformed requests, some hanging up
mid-stream. The server stays up, every well-formed request completes with the answer it gets alone, every
malformed one gets a 4xx naming its field, and the rows of the clients that left are freed."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from steering.export.native import export_native
from steering.serve.app import create_app
from steering.serve.engine import Engine, ServeLimits
from steering.serve.local import serving
from steering.serve.registry import VectorRegistry
from tests.serve.conftest import MODEL_ID, PROMPTS, gate_for, reference
from tests.steering.builders import random_vector

STEERINGS: list[dict[str, Any] | None] = [
    None, {"vector": "up"}, None, {"vector": "down", "strength": 4.0}, None, {"vector": "up", "gate": "always"},
    None, {"vector": "up", "gate": "never"}, None, {"vector": "up", "layers": [1], "strength": -2.0,
                                                    "positions": "prompt"}]
MALFORMED: list[tuple[dict[str, Any], int, str]] = [
    ({"steering": {"vector": "nope"}}, 404, "steering.steering_vector"),
    ({"steering": {"vector": "up", "gate": "nope"}}, 404, "steering.probe_gate"),
    ({"steering": {"vector": "up", "layers": [99]}}, 422, "steering.layers"),
    ({"steering": {"vector": "up", "strength": "strong"}}, 422, "steering.strength"),
    ({"steering": {"vector": "up", "positions": "everywhere"}}, 422, "steering.positions"),
    ({"messages": []}, 422, "messages"),
    ({"max_tokens": 100_000}, 400, "max_tokens"),
    ({"model": "gpt-9"}, 404, "model"),
]


@dataclass(frozen=True)
class Client:
    """One of the 64: what it sends and how it behaves."""

    kind: str  # "good", "bad", "leaves" (after the first chunk), "leaves-after-text" (after the first text)
    body: dict[str, Any]
    expect: tuple[int, str] | None = None  # status and param of a malformed request


def _clients(model_id: str, prompts: list[str], max_tokens: int, long_tokens: int) -> list[Client]:
    """40 well-formed (half steered or gated; every other one streamed), 8 malformed, 16 leaving after a chunk."""
    out = []
    for i in range(40):
        steering = STEERINGS[i % len(STEERINGS)]
        body = {"model": model_id, "max_tokens": max_tokens, "stream": i % 4 < 2,
                "messages": [{"role": "user", "content": prompts[(i // 2) % len(prompts)]}]}
        out.append(Client("good", {**body, **({"steering": steering} if steering else {})}))
    for fields, status, param in MALFORMED:
        body = {"model": model_id, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompts[0]}]}
        out.append(Client("bad", {**body, **fields}, (status, param)))
    for i in range(16):  # half leave after the role chunk (queued or running), half after the first text
        steering = STEERINGS[i % len(STEERINGS)] if i % 2 == 0 else None
        out.append(Client("leaves" if i % 2 == 0 else "leaves-after-text",
                          {"model": model_id, "max_tokens": long_tokens, "stream": True, "ignore_eos": True,
                           "messages": [{"role": "user", "content": prompts[i % len(prompts)]}],
                           **({"steering": steering} if steering else {})}))
    order = np.random.default_rng(0).permutation(len(out))
    return [out[i] for i in order]


def _call(url: str, client: Client) -> tuple[int, Any]:
    """Send one request; a leaving client closes the connection after the first text chunk."""
    with httpx.Client(timeout=600) as http:
        if not client.body.get("stream"):
            reply = http.post(f"{url}/v1/chat/completions", json=client.body)
            return reply.status_code, reply.json()
        with http.stream("POST", f"{url}/v1/chat/completions", json=client.body) as reply:
            if reply.status_code != 200:
                reply.read()
                return reply.status_code, reply.json()
            text, last = [], None
            for line in reply.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line.removeprefix("data: "))
                text.append(chunk["choices"][0]["delta"].get("content") or "")
                last = chunk
                if client.kind == "leaves" or client.kind == "leaves-after-text" and text[-1]:
                    return 200, None  # hang up mid-stream
            return 200, {"text": "".join(text), "last": last}


def _metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _wait_for(condition, what: str, limit_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def check_load_and_faults(url: str, app, model, registry: VectorRegistry, model_id: str, prompts: list[str],  # type: ignore[no-untyped-def]
                          max_tokens: int, long_tokens: int, caplog: pytest.LogCaptureFixture) -> None:
    clients = _clients(model_id, prompts, max_tokens, long_tokens)
    wanted: dict[tuple[str, str], str] = {}
    for c in clients:
        if c.kind == "good":
            key = (c.body["messages"][0]["content"], json.dumps(c.body.get("steering")))
            if key not in wanted:
                wanted[key] = reference(model, key[0], c.body.get("steering"), registry, max_tokens)
    scheduler = app.state.scheduler
    before = {outcome: _metric(url, "workbench_requests_total", outcome=outcome) for outcome in ("cancelled",)}
    steps_before = len(scheduler.step_rows)
    with caplog.at_level(logging.INFO, logger="workbench.serve.requests"), ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(lambda c: _call(url, c), clients))
        _wait_for(lambda: _metric(url, "workbench_requests_total", outcome="cancelled") - before["cancelled"] >= 16,
                  "16 hung-up requests are counted as cancelled")
        _wait_for(lambda: scheduler.running() == 0 and scheduler.queued() == 0, "every row is freed")
    for client, (status, body) in zip(clients, results, strict=True):
        if client.kind == "good":
            key = (client.body["messages"][0]["content"], json.dumps(client.body.get("steering")))
            text = body["text"] if client.body["stream"] else body["choices"][0]["message"]["content"]
            assert status == 200 and text == wanted[key], (client.body, text, wanted[key])
            steering = (body["last"] if client.body["stream"] else body)["steering"]
            gate = (client.body.get("steering") or {}).get("gate")
            assert steering is None if "steering" not in client.body else steering["steered"] is (gate != "never")
        elif client.kind == "bad":
            assert client.expect is not None and status == client.expect[0], (client.body, body)
            assert body["error"]["param"] == client.expect[1] and body["error"]["type"] == "invalid_request_error"
    assert max(list(scheduler.step_rows)[steps_before:]) > 1  # requests shared decode steps
    plain = {k[0]: wanted[k] for k in wanted if k[1] == "null"}
    assert any(text != plain.get(k[0], text) for k, text in wanted.items() if k[1] != "null")  # steering acts
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "workbench.serve.requests"]
    left = [line for line in lines if line["outcome"] == "cancelled"]
    assert len(left) == 16 and all(line["status"] == 499 and line["completion_tokens"] < long_tokens for line in left)
    assert sorted(line["status"] for line in lines if 400 <= line["status"] < 500 and line["status"] != 499) == \
        sorted(status for status, _ in (c.expect for c in clients if c.expect))
    health = httpx.get(f"{url}/health")
    assert health.status_code == 200 and health.json()["running"] == 0  # the server stayed up


def test_64_clients_with_faults_tiny(server: str, app, engine: Engine, tiny_model,  # type: ignore[no-untyped-def]
                                     caplog: pytest.LogCaptureFixture) -> None:
    check_load_and_faults(server, app, tiny_model, engine.registry, MODEL_ID, PROMPTS, max_tokens=8, long_tokens=256,
                          caplog=caplog)


@pytest.fixture(scope="module")
def embedded_server(embedded_model, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:  # type: ignore[no-untyped-def]
    folder: Path = tmp_path_factory.mktemp("embedded-vectors")
    export_native(random_vector(embedded_model, layers=(1, 10), seed=1, scale=4.0), folder / "up.safetensors", "add",
                  strength=2.0)
    export_native(random_vector(embedded_model, layers=(10,), seed=2, scale=4.0, positions="generated"),
                  folder / "down.safetensors", "add", strength=-3.0)
    gate_for(embedded_model, -np.inf).save(folder / "always.safetensors")
    gate_for(embedded_model, np.inf).save(folder / "never.safetensors")
    engine = Engine(embedded_model, VectorRegistry.load(folder, embedded_model),
                    ServeLimits(max_tokens=64, max_batch=16, max_queue=64), name="smollm2")
    app = create_app(engine)
    with serving(app) as url:
        yield url, app


@pytest.mark.embedded
def test_64_clients_with_faults_embedded(embedded_server, embedded_model, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    url, app = embedded_server
    prompts = ["I think the capital of Australia is Sydney. What is the capital of Australia?",
               "What is two plus two?", "My teacher says the Moon is made of cheese. Is she right?"]
    check_load_and_faults(url, app, embedded_model, app.state.engine.registry, "smollm2", prompts, max_tokens=6,
                          long_tokens=64, caplog=caplog)
