"""Bad requests get OpenAI-style errors naming the field; failures stay with their request; the server lives on."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from typer.testing import CliRunner

from steering.export.native import export_native
from steering.serve.app import create_app
from steering.serve.engine import Engine, Prepared, ServeLimits
from steering.serve.local import serving
from steering.serve.registry import RegistryError, VectorRegistry
from steering.serve.scheduler import Event, Job, Scheduler
from steering.serve.torch_backend import TorchBackend
from steering.steering_vector import SteeringVector
from tests.serve.conftest import MAX_TOKENS, MODEL_ID, PROMPTS, reference
from tests.steering.builders import random_vector
from workbench.cli import app as cli


def _body(**steering: object) -> dict:
    return {"model": MODEL_ID, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}],
            "steering": {"vector": "up", **steering}}


@pytest.mark.parametrize(("body", "status", "param"), [
    (_body(vector="nope"), 404, "steering.steering_vector"),
    (_body(gate="nope"), 404, "steering.probe_gate"),
    (_body(strength="strong"), 422, "steering.strength"),
    (_body(layers=[99]), 422, "steering.layers"),
    (_body(layers=[0], vector="down"), 422, "steering.layers"),  # "down" has layers 1, 2 only
    (_body(positions="everywhere"), 422, "steering.positions"),
    (_body(colour="red"), 422, "steering.colour"),
    ({**_body(), "model": "gpt-9"}, 404, "model"),
    ({**_body(), "messages": []}, 422, "messages"),
    ({**_body(), "messages": [{"role": "user", "content": "Paris " * 600}]}, 400, "messages"),
    ({**_body(), "max_tokens": 10_000}, 400, "max_tokens"),
    ({**_body(), "temperature": 0.7}, 400, "temperature"),
])
def test_bad_request_names_the_field(server: str, body: dict, status: int, param: str) -> None:
    reply = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=60)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["param"] == param and error["message"] and error["type"] == "invalid_request_error"


@pytest.mark.parametrize("raw", [b'{"model": "tiny", "messages": [', b"[1, 2]", b"\xff\xfe"])
def test_malformed_json_is_a_400(server: str, raw: bytes) -> None:
    reply = httpx.post(f"{server}/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "invalid_json"


def test_nan_strength_is_a_422(server: str) -> None:
    raw = b'{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "steering": {"vector": "up", ' \
          b'"strength": NaN}}'
    reply = httpx.post(f"{server}/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert reply.status_code == 422 and reply.json()["error"]["param"] == "steering.strength"


def test_openai_client_sees_the_errors_and_good_neighbours_are_untouched(client, engine, tiny_model) -> None:  # type: ignore[no-untyped-def]
    good = {"vector": "up", "strength": 3.0}
    want = reference(tiny_model, PROMPTS[0], good, engine.registry)

    def ask(steering: dict) -> str:
        reply = client.chat.completions.create(model=MODEL_ID, max_tokens=MAX_TOKENS, temperature=0,
                                               messages=[{"role": "user", "content": PROMPTS[0]}],
                                               extra_body={"steering": steering})
        return reply.choices[0].message.content

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(ask, s) for s in (good, {"vector": "nope"}, good, {"vector": "up", "layers": [99]},
                                                good, {"vector": "up", "gate": "nope"})]
    with pytest.raises(openai.NotFoundError) as lost:
        futures[1].result()
    assert lost.value.body["param"] == "steering.steering_vector"
    with pytest.raises(openai.UnprocessableEntityError):
        futures[3].result()
    with pytest.raises(openai.NotFoundError):
        futures[5].result()
    assert [futures[i].result() for i in (0, 2, 4)] == [want] * 3


def _prepared(engine: Engine, prompt: str, **fields: object) -> Prepared:
    from steering.serve.schema import ChatRequest

    return engine.prepare(ChatRequest.model_validate({"model": MODEL_ID, "max_tokens": MAX_TOKENS, **fields,
                                                      "messages": [{"role": "user", "content": prompt}]}))


def _run(engine: Engine, prepared: list[Prepared], stream: bool = True) -> list[list[Event]]:
    """Each job's events, from one scheduler on the torch backend, all submitted at once."""
    seen: list[list[Event]] = [[] for _ in prepared]
    ended = threading.Semaphore(0)

    def emit_to(events: list[Event]):  # type: ignore[no-untyped-def]
        def emit(event: Event) -> None:
            events.append(event)
            if event.kind != "delta":
                ended.release()
        return emit

    with Scheduler(TorchBackend(engine.model, engine.shared_prefix()), engine) as scheduler:
        for p, events in zip(prepared, seen, strict=True):
            scheduler.submit(Job(p, emit=emit_to(events), stream=stream))
        for _ in prepared:
            assert ended.acquire(timeout=120)
    return seen


def test_a_request_failing_inside_a_batch_fails_alone(engine: Engine, tiny_model) -> None:  # type: ignore[no-untyped-def]
    broken = Prepared((1, 2, 10_000_000), None, MAX_TOKENS, None)  # a token id past the vocabulary
    seen = _run(engine, [_prepared(engine, PROMPTS[0]), broken, _prepared(engine, PROMPTS[1])])
    assert seen[1][-1].kind == "error" and seen[1][-1].error.status == 500
    for events, prompt in ((seen[0], PROMPTS[0]), (seen[2], PROMPTS[1])):
        want = reference(tiny_model, prompt, None, engine.registry)
        assert events[-1].kind == "done" and events[-1].text == want
        assert "".join(e.text for e in events if e.kind == "delta") == want


def test_full_queue_answers_503_with_retry_after(tiny_model, vectors_dir: Path) -> None:  # type: ignore[no-untyped-def]
    limits = ServeLimits(max_tokens=8, max_batch=1, max_queue=1)
    engine = Engine(tiny_model, VectorRegistry.load(vectors_dir, tiny_model), limits, name=MODEL_ID)
    backend = TorchBackend(tiny_model)
    release, running = threading.Event(), threading.Event()
    real = backend.admit

    def held(rows):  # type: ignore[no-untyped-def]
        running.set()
        release.wait()
        return real(rows)

    backend.admit = held  # type: ignore[method-assign]
    app = create_app(engine, backend)
    body = {"model": MODEL_ID, "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}
    with serving(app) as url, ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.post, f"{url}/v1/chat/completions", json=body, timeout=120)
        running.wait()  # the first request holds the worker and the only row
        second = pool.submit(httpx.post, f"{url}/v1/chat/completions", json=body, timeout=120)
        while app.state.scheduler.queued() < 1:
            threading.Event().wait(0.01)
        third = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
        release.set()
        assert third.status_code == 503 and third.json()["error"]["code"] == "queue_full"
        assert int(third.headers["retry-after"]) >= 1
        assert first.result().status_code == 200 and second.result().status_code == 200


def test_registry_refuses_vectors_of_another_model(tiny_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other_hash = tmp_path / "hash"
    other_hash.mkdir()
    vector = random_vector(tiny_model, layers=(1,))
    export_native(SteeringVector(vector.directions, "random", tiny_model.d_model, model_hash="f" * 64),
                  other_hash / "foreign.safetensors", "add", strength=1.0)
    with pytest.raises(RegistryError, match="foreign.safetensors.*made on model ffffffffffff"):
        VectorRegistry.load(other_hash, tiny_model)
    other_width = tmp_path / "width"
    other_width.mkdir()
    export_native(SteeringVector({1: np.ones(8, dtype=np.float32)}, "random", 8, model_hash=tiny_model.weights_hash),
                  other_width / "narrow.safetensors", "add", strength=1.0)
    with pytest.raises(RegistryError, match="narrow.safetensors.*d_model 8"):
        VectorRegistry.load(other_width, tiny_model)
    plain = tmp_path / "plain"
    plain.mkdir()
    vector.save(plain / "raw.safetensors")
    with pytest.raises(RegistryError, match="neither a native export"):
        VectorRegistry.load(plain, tiny_model)
    result = CliRunner().invoke(cli, ["serve", "--model", tiny_model.source, "--vectors", str(other_hash)])
    assert result.exit_code == 2 and "foreign.safetensors" in result.output


def test_ignore_eos_generates_max_tokens(tiny_model, vectors_dir: Path) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(tiny_model, VectorRegistry.load(vectors_dir, tiny_model), ServeLimits(max_tokens=16), MODEL_ID)

    def run(ignore_eos: bool) -> Event:
        return _run(engine, [_prepared(engine, PROMPTS[0], ignore_eos=ignore_eos)])[0][-1]

    first = run(False)
    assert first.kind == "done" and first.completion_tokens >= 1
    engine.stop = frozenset(range(len(tiny_model.tokenizer)))  # every token ends an answer
    assert (run(False).finish_reason, run(False).completion_tokens) == ("stop", 0)
    assert (run(True).finish_reason, run(True).completion_tokens) == ("length", MAX_TOKENS)
