"""`workbench serve` through the official openai client: listings, plain and streamed answers, steered batches."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from steering.serve.engine import Engine
from tests.serve.conftest import MAX_TOKENS, MODEL_ID, PROMPTS, reference


def _ask(client, prompt: str, steering: dict | None, stream: bool = False) -> tuple[str, dict | None]:  # type: ignore[no-untyped-def]
    extra = {"steering": steering} if steering is not None else None
    messages = [{"role": "user", "content": prompt}]
    if not stream:
        reply = client.chat.completions.create(model=MODEL_ID, messages=messages, max_tokens=MAX_TOKENS,
                                               temperature=0, extra_body=extra)
        return reply.choices[0].message.content, reply.model_extra.get("steering")
    parts, last = [], None
    for chunk in client.chat.completions.create(model=MODEL_ID, messages=messages, max_tokens=MAX_TOKENS,
                                                stream=True, extra_body=extra):
        parts.append(chunk.choices[0].delta.content or "")
        last = chunk
    assert last is not None and last.choices[0].finish_reason in ("stop", "length")
    return "".join(parts), last.model_extra.get("steering")


def test_models_and_vectors_are_listed(client, server, tiny_model):  # type: ignore[no-untyped-def]
    assert [m.id for m in client.models.list()] == [MODEL_ID]
    listing = httpx.get(f"{server}/v1/steering/vectors").json()
    records = {v["name"]: v["record"] for v in listing["vectors"]}
    assert set(records) == {"up", "down"}
    assert records["up"]["model_hash"] == tiny_model.weights_hash and records["up"]["strength"] == 3.0
    assert records["up"]["measured"] == {"gain": 0.1, "kl_all": 0.01} and records["down"]["positions"] == "generated"
    assert {g["name"] for g in listing["gates"]} == {"always", "never"}


def test_answers_equal_steer_alone_and_steering_changes_them(client, engine: Engine, tiny_model):  # type: ignore[no-untyped-def]
    prompt = PROMPTS[0]
    steering = {"vector": "up", "strength": 3.0, "layers": [1, 2], "positions": "all"}
    expected_plain = reference(tiny_model, prompt, None, engine.registry)
    expected_steered = reference(tiny_model, prompt, steering, engine.registry)
    plain, plain_info = _ask(client, prompt, None)
    steered, info = _ask(client, prompt, steering)
    assert plain == expected_plain and plain_info is None
    assert steered == expected_steered and steered != plain
    assert info == {**steering, "mode": "add", "gate": None, "steered": True}


def test_streaming_equals_the_plain_answer(client, engine: Engine, tiny_model):  # type: ignore[no-untyped-def]
    steering = {"vector": "down"}  # the export's recorded strength, layers and positions
    expected = reference(tiny_model, PROMPTS[1], steering, engine.registry)
    text, info = _ask(client, PROMPTS[1], steering, stream=True)
    assert text == expected and expected
    assert info["strength"] == -3.0 and info["layers"] == [1, 2] and info["positions"] == "generated"


def test_sixteen_concurrent_mixed_requests_equal_each_alone(client, app, engine: Engine, tiny_model):  # type: ignore[no-untyped-def]
    kinds = [None, {"vector": "up"}, {"vector": "down", "strength": 4.0}, {"vector": "up", "gate": "always"},
             {"vector": "up", "gate": "never"}, {"vector": "up", "layers": [0], "strength": -2.0, "positions": "prompt"}]
    jobs = [(PROMPTS[i % len(PROMPTS)], kinds[i % len(kinds)], i % 3 == 0) for i in range(16)]
    expected = [reference(tiny_model, p, s, engine.registry) for p, s, _ in jobs]  # before the server is busy
    plain = {p: reference(tiny_model, p, None, engine.registry) for p in PROMPTS}
    steps = app.state.scheduler.step_rows
    before = len(steps)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda job: _ask(client, *job), jobs))
    for (prompt, steering, _), (text, info), want in zip(jobs, results, expected, strict=True):
        assert text == want, (prompt, steering)
        if steering is not None and steering.get("gate") == "never":
            assert info["steered"] is False and text == plain[prompt]
        elif steering is not None:
            assert info["steered"] is True
    assert any(want != plain[p] for (p, s, _), want in zip(jobs, expected, strict=True) if s)
    assert max(list(steps)[before:]) > 1  # requests shared decode steps
