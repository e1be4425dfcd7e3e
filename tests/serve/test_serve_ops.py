"""What an operator relies on: /health, /metrics, the per-request log line, the request timeout, a client that
hangs up, and a graceful shutdown."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from steering.serve.app import create_app
from steering.serve.backend import Token
from steering.serve.engine import Engine, ServeLimits
from steering.serve.local import serving
from steering.serve.registry import VectorRegistry
from steering.serve.torch_backend import TorchBackend
from tests.serve.conftest import MODEL_ID, PROMPTS, reference
from workbench.cli import app as cli


class SlowBackend(TorchBackend):
    """The torch backend with a pause before each decode step, so a test can act while rows run."""

    def __init__(self, model, pause_s: float) -> None:  # type: ignore[no-untyped-def]
        super().__init__(model)
        self.pause_s = pause_s
        self.released: list[int] = []

    def step(self) -> list[Token]:
        time.sleep(self.pause_s)
        return super().step()

    def release(self, keys: Sequence[int]) -> None:
        self.released.extend(keys)
        super().release(keys)


def _body(max_tokens: int, stream: bool = False, ignore_eos: bool = True, prompt: str = PROMPTS[0]) -> dict:
    return {"model": MODEL_ID, "max_tokens": max_tokens, "stream": stream, "ignore_eos": ignore_eos,
            "messages": [{"role": "user", "content": prompt}]}


def _samples(url: str) -> list:  # type: ignore[type-arg]
    text = httpx.get(f"{url}/metrics").text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _value(samples: list, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _wait_for(condition, what: str, limit_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def _app(tiny_model, vectors_dir: Path, backend: TorchBackend, **limits: float) -> object:  # type: ignore[no-untyped-def]
    engine = Engine(tiny_model, VectorRegistry.load(vectors_dir, tiny_model), ServeLimits(max_tokens=256, **limits),
                    MODEL_ID)
    return create_app(engine, backend)


def test_health_metrics_and_one_log_line_per_request(server: str, caplog: pytest.LogCaptureFixture) -> None:
    before = _samples(server)
    steered = {**_body(6), "steering": {"vector": "up"}}
    with caplog.at_level(logging.INFO, logger="workbench.serve.requests"):
        plain = httpx.post(f"{server}/v1/chat/completions", json=_body(5), timeout=60).json()
        httpx.post(f"{server}/v1/chat/completions", json=steered, timeout=60).raise_for_status()
        bad = httpx.post(f"{server}/v1/chat/completions", json={**_body(5), "steering": {"vector": "nope"}})
    assert bad.status_code == 404
    health = httpx.get(f"{server}/health")
    assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["queued"] == 0
    reply = httpx.get(f"{server}/metrics")
    assert reply.headers["content-type"].startswith("text/plain")
    after = _samples(server)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("workbench_requests_total", code="200", steered="true", outcome="length") == 1
    assert grew("workbench_requests_total", code="200", steered="false", outcome="length") == 1
    assert grew("workbench_requests_total", code="404", outcome="vector_not_found") == 1
    assert grew("workbench_generated_tokens_total", steered="true") == 6
    assert grew("workbench_generated_tokens_total", steered="false") == 5
    assert grew("workbench_time_to_first_token_seconds_count", steered="true") == 1
    cached = plain["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached > 0 and grew("workbench_prompt_cached_tokens_total") == cached  # "up" steers all positions
    assert grew("workbench_decode_step_rows_count") >= 4 and _value(after, "workbench_queue_depth") == 0
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "workbench.serve.requests"]
    assert [(line["status"], line["outcome"]) for line in lines] == [(200, "length"), (200, "length"),
                                                                   (404, "vector_not_found")]
    assert lines[0]["completion_tokens"] == 5 and lines[0]["steering"] is None and lines[0]["ttft_s"] > 0
    assert lines[1]["steering"]["vector"] == "up" and lines[1]["steered"] is True
    assert lines[2]["param"] == "steering.steering_vector" and lines[2]["completion_tokens"] == 0


def test_request_past_the_timeout_is_a_504_and_frees_its_row(tiny_model, vectors_dir: Path) -> None:  # type: ignore[no-untyped-def]
    backend = SlowBackend(tiny_model, pause_s=0.05)
    app = _app(tiny_model, vectors_dir, backend, timeout_s=0.5)
    with serving(app) as url:  # type: ignore[arg-type]
        late = httpx.post(f"{url}/v1/chat/completions", json=_body(200), timeout=60)
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=_body(200, stream=True), timeout=60) as stream:
            events = [line for line in stream.iter_lines() if line.startswith("data: ")]
        assert late.status_code == 504 and late.json()["error"]["code"] == "timeout"
        assert json.loads(events[-2].removeprefix("data: "))["error"]["code"] == "timeout"
        assert events[-1] == "data: [DONE]" and len(events) < 200
        assert app.state.scheduler.running() == 0 and len(backend.released) == 2  # type: ignore[attr-defined]


def test_a_client_that_hangs_up_frees_its_row(tiny_model, vectors_dir: Path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    backend = SlowBackend(tiny_model, pause_s=0.02)
    app = _app(tiny_model, vectors_dir, backend)
    with caplog.at_level(logging.INFO, logger="workbench.serve.requests"), serving(app) as url:  # type: ignore[arg-type]
        with pytest.raises(httpx.ReadTimeout):  # a non-streamed request: the client gives up waiting
            httpx.post(f"{url}/v1/chat/completions", json=_body(256), timeout=httpx.Timeout(60, read=0.5))
        _wait_for(lambda: len(backend.released) == 1, "the row is released")
        assert app.state.scheduler.running() == 0  # type: ignore[attr-defined]
    line = json.loads(next(r.getMessage() for r in caplog.records if r.name == "workbench.serve.requests"))
    assert line["outcome"] == "cancelled" and line["status"] == 499 and 0 < line["completion_tokens"] < 256


@pytest.mark.parametrize("grace_s", [30, 0])
def test_shutdown_finishes_requests_in_flight_within_the_grace_period(tiny_model, vectors_dir: Path,  # type: ignore[no-untyped-def]
                                                                      engine: Engine, grace_s: int) -> None:
    backend = SlowBackend(tiny_model, pause_s=0.1)
    app = _app(tiny_model, vectors_dir, backend)
    started = threading.Event()
    tokens = 8 if grace_s else 256

    def read(url: str) -> tuple[str, bool]:
        text, done = [], False
        try:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=_body(tokens, True, ignore_eos=False),
                              timeout=60) as stream:
                for line in stream.iter_lines():
                    started.set()
                    if line == "data: [DONE]":
                        done = True
                    elif line.startswith("data: "):
                        text.append(json.loads(line.removeprefix("data: "))["choices"][0]["delta"].get("content")
                                    or "")
        except httpx.HTTPError:  # the server cut the stream
            pass
        return "".join(text), done

    with ThreadPoolExecutor(1) as pool:
        with serving(app, grace_s=grace_s) as url:  # type: ignore[arg-type]
            reader = pool.submit(read, url)
            started.wait(60)
        text, done = reader.result()  # the server has stopped
    scheduler = app.state.scheduler  # type: ignore[attr-defined]
    assert not scheduler.alive and scheduler.running() == 0 and backend.live == 0
    if grace_s:  # the request in flight finished
        assert done and text == reference(tiny_model, PROMPTS[0], None, engine.registry, tokens)
    else:  # cut at once, long before its 256 tokens
        assert not done


def test_batch_window_is_accepted_and_said_to_be_ignored(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--vectors", str(tmp_path / "none"), "--batch-window-ms", "5",
                                      "--timeout", "-1"])
    assert result.exit_code == 2 and "--batch-window-ms is ignored" in result.output and "--timeout" in result.output
