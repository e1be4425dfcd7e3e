"""The FastAPI app: OpenAI's chat-completions API with a `steering` field, on an `Engine` and a `Batcher`.

Endpoints:

- `POST /v1/chat/completions`: OpenAI's body plus `"steering": {"vector", "strength", "layers", "positions",
  "gate"}` (absent: unsteered); `stream: true` answers server-sent events. The response carries what was
  applied under `steering`, with `steered`: whether the intervention acted (False when the gate held it back).
- `GET /v1/models`: the served model.
- `GET /v1/steering/vectors`: the loaded vectors and gates with their export records.

Errors are OpenAI's JSON (`{"error": {"message", "type", "param", "code"}}`): 400 malformed JSON or a prompt
past the context, 404 an unknown model, vector or gate, 422 a bad field (named in `param`), 503 a full queue.

Example:
    >>> app = build_app(ServeConfig(model="smollm2", vectors=Path("artifacts/demo/export")))  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from steering.serve.batcher import Batcher, QueueFull
from steering.serve.engine import Engine, Event, Job, Prepared, ServeLimits
from steering.serve.registry import VectorRegistry
from steering.serve.schema import ApiError, parse_request


@dataclass(frozen=True)
class ServeConfig:
    """What `workbench serve` starts: a model, a folder of vectors and gates, the limits.

    Args:
        model: as `load_model` takes it ("smollm2", a folder, a .gguf, a hub id); also the model id clients send.
        vectors: folder of native exports and probe gates (None: serve unsteered only).
        limits: max tokens, batch, queue and the batching window.
    """

    model: str
    vectors: Path | None = None
    limits: ServeLimits = field(default_factory=ServeLimits)


def build_app(config: ServeConfig) -> FastAPI:
    """Load the model and the vectors (refusing foreign ones), and return the app.

    Raises:
        ModelLoadError, RegistryError: the model or a vector file cannot be served.
    """
    from interp.models.loading import load_model

    model = load_model(config.model)
    registry = VectorRegistry.load(config.vectors, model) if config.vectors is not None else VectorRegistry.empty()
    return create_app(Engine(model, registry, config.limits, name=config.model))


def create_app(engine: Engine) -> FastAPI:
    """The app on a ready engine; its batcher thread starts and stops with the app's lifespan.

    Args:
        engine: the model, its registry and the limits.
    """
    batcher = Batcher(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with batcher:
            yield

    app = FastAPI(title="workbench serve", lifespan=lifespan)
    app.state.engine = engine
    app.state.batcher = batcher

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        failure = ApiError(500, f"internal error: {type(error).__name__}: {error}", code="internal_error")
        return JSONResponse(failure.body(), status_code=500)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        m = engine.model
        return {"object": "list", "data": [{"id": engine.name, "object": "model", "created": 0,
                                            "owned_by": "workbench", "d_model": m.d_model, "n_layers": m.n_layers,
                                            "weights_hash": m.weights_hash, "context": engine.context}]}

    @app.get("/v1/steering/vectors")
    async def vectors() -> dict[str, Any]:
        return engine.registry.listing()

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> JSONResponse | StreamingResponse:
        body = parse_request(await request.body())
        prepared = engine.prepare(body)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()

        def emit(event: Event) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        job = Job(prepared, emit=emit)
        try:
            batcher.submit(job)
        except QueueFull as e:
            raise ApiError(503, str(e), code="queue_full") from None
        reply = _Reply(engine.name, prepared)
        if body.stream:
            return StreamingResponse(_sse(reply, job, events), media_type="text/event-stream")
        try:
            text = []
            while (event := await events.get()).kind == "delta":
                text.append(event.text)
        finally:
            job.cancelled.set()
        if event.kind == "error" and event.error is not None:
            raise event.error
        return JSONResponse(reply.completion("".join(text), event))

    return app


class _Reply:
    """OpenAI's response objects for one request."""

    def __init__(self, model: str, prepared: Prepared) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model
        self.prepared = prepared

    def steering(self, event: Event) -> dict[str, Any] | None:
        info = self.prepared.steering
        return None if info is None else {**info, "steered": event.steered}

    def usage(self, event: Event) -> dict[str, int]:
        prompt = len(self.prepared.token_ids)
        return {"prompt_tokens": prompt, "completion_tokens": event.completion_tokens,
                "total_tokens": prompt + event.completion_tokens}

    def completion(self, text: str, event: Event) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": event.finish_reason}],
                "usage": self.usage(event), "steering": self.steering(event)}

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None, tail: dict[str, Any] | None = None) -> str:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **(tail or {})}
        return f"data: {json.dumps(body)}\n\n"


async def _sse(reply: _Reply, job: Job, events: asyncio.Queue[Event]) -> AsyncIterator[str]:
    """Server-sent events: a role chunk, one chunk per text delta, a final chunk, then `[DONE]`."""
    try:
        yield reply.chunk({"role": "assistant", "content": ""})
        while (event := await events.get()).kind == "delta":
            yield reply.chunk({"content": event.text})
        if event.kind == "error" and event.error is not None:
            yield f"data: {json.dumps(event.error.body())}\n\n"
        else:
            yield reply.chunk({}, event.finish_reason, {"usage": reply.usage(event), "steering": reply.steering(event)})
        yield "data: [DONE]\n\n"
    finally:
        job.cancelled.set()  # a client that hung up frees its row
