"""`workbench serve --engine llamacpp`: the embedded model's GGUF in llama.cpp, a control vector per request.

References: a request's tokens decoded alone by `steering.llamacpp.steered.generate` (one sequence, the
vector set and cleared between decodes), and the hook-steered HF model, which llama.cpp must follow token
for token wherever HF's top-1 margin is above the quantisation noise (MARGIN).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from steering.apply.spec import SteerSpec
from steering.artifacts.probe_gate import ProbeGate
from steering.export.compare import PROMPTS, prompt_ids
from steering.export.llamacpp import model_gguf
from steering.export.native import export_native
from steering.llamacpp.runtime import ControlVector, LlamaContext, LlamaModel
from steering.llamacpp.steered import generate
from steering.serve.app import create_app
from steering.serve.backend import RowRequest
from steering.serve.engine import Engine, ServeLimits
from steering.serve.llamacpp_backend import LlamaCppBackend, llamacpp_backend
from steering.serve.local import serving
from steering.serve.registry import VectorRegistry
from tests.steering.builders import random_vector
from workbench.cli import app as cli

pytestmark = pytest.mark.embedded

TOKENS = 10
LAYERS = (8, 9, 10, 11, 12)
# llama.cpp (Q4_1) and HF (dequantised float32) pick the same greedy token wherever HF's top-1 logit leads its
# runner-up by this much: measured on 12 prompts x 24 tokens, steered and not, every disagreement had a lead < 0.22
MARGIN = 0.5


@pytest.fixture(scope="module")
def gguf(embedded_model, llama_cpp_library) -> Path:  # type: ignore[no-untyped-def]
    path = model_gguf(embedded_model)
    assert path is not None
    return path


@pytest.fixture(scope="module")
def vectors(embedded_model):  # type: ignore[no-untyped-def]
    return {"a": random_vector(embedded_model, layers=LAYERS, seed=5, scale=0.15),
            "b": random_vector(embedded_model, layers=LAYERS, seed=6, scale=0.15)}


@pytest.fixture(scope="module")
def alone(gguf: Path) -> Iterator[LlamaContext]:  # type: ignore[no-untyped-def]
    """A one-sequence context of its own: requests decoded alone there are the references."""
    with LlamaModel(gguf) as lm, LlamaContext(lm, n_ctx=256) as ctx:
        yield ctx


Steer = tuple[SteerSpec, float]  # a row's steering and its strength


def solo(ctx: LlamaContext, ids: list[int], steer: Steer | None, n: int = TOKENS) -> list[int]:
    """One request decoded alone (`steered.generate`): the reference every batched row must equal."""
    cvec = None if steer is None else ControlVector.of(steer[0].vector.select(list(steer[0].layers)), steer[1],
                                                       ctx.model.n_layers)
    return generate(ctx, ids, cvec, steer[0].positions if steer else "all", n, frozenset())


def request(key: int, ids: list[int], steer: Steer | None) -> RowRequest:
    return RowRequest(key, tuple(ids), *(steer or (None, 0.0)))


def test_rows_joining_and_leaving_equal_each_alone(embedded_model, gguf, vectors, alone):  # type: ignore[no-untyped-def]
    """Steered (two vectors, three positions rules) and unsteered rows interleaved in one context, joining
    and leaving mid-flight: each row's tokens equal that request decoded alone; nothing leaks between rows."""
    ids = prompt_ids(embedded_model)
    steers: list[Steer | None] = [
        None, (SteerSpec(vectors["a"], LAYERS, "generated"), 4.0), (SteerSpec(vectors["b"], LAYERS, "all"), -4.0),
        (SteerSpec(vectors["a"], LAYERS, "generated"), 4.0), None, (SteerSpec(vectors["a"], (9, 10), "prompt"), 6.0)]
    backend = LlamaCppBackend(gguf, max_rows=4, n_ctx=256)
    got: dict[int, list[int]] = {}
    try:
        def take(tokens):  # type: ignore[no-untyped-def]
            for t in tokens:
                got.setdefault(t.key, []).append(t.token)
                assert t.steered is (None if steers[t.key] is None else True)

        take(backend.admit([request(k, ids[k], steers[k]) for k in (0, 1, 2)]))
        for _ in range(3):
            take(backend.step())
        backend.release([0])  # leaves early: its slot is reused by row 3
        take(backend.admit([request(3, ids[3], steers[3])]))
        take(backend.admit([request(4, ids[4], steers[4])]))
        assert not backend.can_admit(request(5, ids[5], steers[5]))
        live = {1, 2, 3}
        while len(got[4]) < TOKENS:
            take(backend.step())
            for key in [k for k in live if len(got[k]) == TOKENS]:
                backend.release([key])
                live.discard(key)
        take(backend.admit([request(5, ids[5], steers[5])]))
        while len(got[5]) < TOKENS:
            take(backend.step())
        assert backend.ctx.vector_changes > 2
    finally:
        backend.close()
    assert len(got[0]) == 4 and got[0] == solo(alone, ids[0], None, 4)
    for k in range(1, 6):
        assert got[k][:TOKENS] == solo(alone, ids[k], steers[k]), k
    assert got[1][:TOKENS] != solo(alone, ids[1], None)  # the vector acts (so the equalities above are not trivial)


def test_greedy_tokens_follow_the_hook_steered_hf_model(embedded_model, vectors, alone):  # type: ignore[no-untyped-def]
    """llama.cpp's greedy tokens with a "generated" vector, scored by HF steered by `steer` at the same positions:
    HF picks the same token at every step where its lead over the runner-up is at least MARGIN logits."""
    steer = (SteerSpec(vectors["a"], LAYERS, "generated"), 2.0)
    spec = SteerSpec(vectors["a"], LAYERS, "generated")
    checked = 0
    for ids in prompt_ids(embedded_model, PROMPTS[::3]):
        tokens = solo(alone, ids, steer, 16)
        with torch.no_grad(), spec.context(model=embedded_model, strengths=2.0, prompt_tokens=[len(ids)]):
            logits = embedded_model.hf(torch.tensor([ids + tokens])).logits[0, len(ids) - 1 : -1]
        top = logits.topk(2, dim=-1)
        sure = (top.values[:, 0] - top.values[:, 1]) >= MARGIN
        assert torch.equal(top.indices[sure, 0], torch.tensor(tokens)[sure])
        checked += int(sure.sum())
    assert checked >= 40  # most steps are not near-ties


@pytest.fixture(scope="module")
def served(embedded_model, gguf, vectors, tmp_path_factory) -> Iterator[tuple[str, Engine]]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("llamacpp-vectors")
    export_native(replace(vectors["a"], positions="generated"), folder / "a.safetensors", "add", strength=4.0)
    export_native(random_vector(embedded_model, layers=(10,), seed=7), folder / "flat.safetensors", "ablate")
    export_native(random_vector(embedded_model, layers=(0, 1), seed=8, scale=0.1), folder / "low.safetensors", "add",
                  strength=1.0)
    unit = np.zeros(embedded_model.d_model, dtype=np.float32)
    unit[0] = 1.0
    ProbeGate(unit, bias=0.0, threshold=0.0, layer=5, per="last_prompt",
              meta={"model_hash": embedded_model.weights_hash}).save(folder / "gate.safetensors")
    engine = Engine(embedded_model, VectorRegistry.load(folder, embedded_model),
                    ServeLimits(max_tokens=64, max_batch=4, max_queue=16), name="smollm2")
    backend = llamacpp_backend(engine, n_threads=1)
    try:
        with serving(create_app(engine, backend)) as url:
            yield url, engine
    finally:
        backend.close()


def _ask(client, prompt: str, steering: dict | None, stream: bool = False) -> tuple[str, dict | None]:  # type: ignore[no-untyped-def]
    extra = {"steering": steering} if steering is not None else None
    messages = [{"role": "user", "content": prompt}]
    if not stream:
        reply = client.chat.completions.create(model="smollm2", messages=messages, max_tokens=TOKENS,
                                               extra_body=extra)
        return reply.choices[0].message.content, reply.model_extra.get("steering")
    parts, last = [], None
    for chunk in client.chat.completions.create(model="smollm2", messages=messages, max_tokens=TOKENS, stream=True,
                                                extra_body=extra):
        parts.append(chunk.choices[0].delta.content or "")
        last = chunk
    assert last is not None
    return "".join(parts), last.model_extra.get("steering")


def _expected(engine: Engine, ctx: LlamaContext, prompt: str, steering: dict | None) -> str:
    ids = prompt_ids(engine.model, (prompt,))[0]
    steer = None
    if steering is not None:
        served_vector = engine.registry.vectors[steering["vector"]]
        steer = (SteerSpec(served_vector.vector, tuple(steering.get("layers") or served_vector.info.layers),
                           steering.get("positions") or served_vector.info.positions),
                 float(steering.get("strength", served_vector.info.strength)))
    tokens = solo(ctx, ids, steer)
    stop = engine.stop
    cut = next((i for i, t in enumerate(tokens) if t in stop), len(tokens))
    return engine.model.tokenizer.decode(tokens[:cut], skip_special_tokens=True)


def test_openai_client_gets_per_request_vectors(served, alone):  # type: ignore[no-untyped-def]
    openai = pytest.importorskip("openai")
    url, engine = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)
    assert [m.id for m in client.models.list()] == ["smollm2"]
    kinds = [None, {"vector": "a"}, {"vector": "a", "strength": -4.0, "positions": "all"},
             {"vector": "a", "layers": [9, 10], "positions": "prompt", "strength": 6.0}]
    jobs = [(prompt, kind) for prompt in (PROMPTS[0], PROMPTS[6]) for kind in kinds]
    expected = [_expected(engine, alone, p, s) for p, s in jobs]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: _ask(client, *job), jobs))
    for (prompt, steering), (text, info), want in zip(jobs, results, expected, strict=True):
        assert text == want, (prompt, steering)
        assert (info is None) if steering is None else info["steered"] is True
    plain = {p: w for (p, s), w in zip(jobs, expected, strict=True) if s is None}
    assert any(w != plain[p] for (p, s), w in zip(jobs, expected, strict=True) if s is not None and p in plain)
    streamed, info = _ask(client, jobs[1][0], jobs[1][1], stream=True)
    assert streamed == expected[1] and info is not None and info["positions"] == "generated"


@pytest.mark.parametrize(("steering", "status", "says"), [
    ({"vector": "a", "gate": "gate"}, 422, "cannot run a probe gate"),
    ({"vector": "flat"}, 422, "mode 'ablate'"),
    ({"vector": "low", "layers": [0]}, 422, "cannot steer layer 0"),
    ({"vector": "nope"}, 404, "no steering vector"),
])
def test_what_llama_cpp_cannot_do_is_refused(served, steering, status, says):  # type: ignore[no-untyped-def]
    import httpx

    url, _ = served
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4,
            "steering": steering}
    reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
    assert reply.status_code == status and says in reply.json()["error"]["message"]


def test_context_is_the_llama_cpp_cache_per_row(served):  # type: ignore[no-untyped-def]
    import httpx

    url, engine = served
    assert engine.context == 2048
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "word " * 2100}], "max_tokens": 4}
    reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "context_length_exceeded"


def test_cli_refuses_llama_cpp_for_a_model_without_gguf(tiny_model_dir):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, ["serve", "--model", str(tiny_model_dir), "--engine", "llamacpp"])
    assert result.exit_code == 2 and "has no GGUF file" in result.output
    result = CliRunner().invoke(cli, ["serve", "--model", str(tiny_model_dir), "--engine", "vllm"])
    assert result.exit_code == 2 and "--engine 'vllm'" in result.output
