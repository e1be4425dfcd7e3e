"""The FastAPI app: OpenAI's chat-completions API with a `steering` field, on an `Engine` and a `Scheduler`.

Endpoints:

- `POST /v1/chat/completions`: OpenAI's body plus `"steering": {"vector", "strength", "layers", "positions",
  "gate"}` (absent: unsteered); `stream: true` answers server-sent events. The response carries what was
  applied under `steering`, with `steered`: whether the intervention acted (False when the gate held it back).
- `GET /v1/models`: the served model.
- `GET /v1/steering/vectors`: the loaded vectors and gates with their export records.
- `GET /health`: 200 `{"status": "ok", "queued", "running", ...}` while the scheduler runs, else 503.
- `GET /metrics`: Prometheus text format (`steering.serve.telemetry`).

Errors are OpenAI's JSON (`{"error": {"message", "type", "param", "code"}}`): 400 malformed JSON or a prompt
past the context, 404 an unknown model, vector or gate, 422 a bad field (named in `param`), 503 a full queue
(with `Retry-After`) or a server shutting down, 504 a request past `--timeout`. A client that hangs up frees
its row at the next decode step. Every request ends with one JSON log line (`workbench.serve.requests`).

Example:
    >>> app = build_app(ServeConfig(model="smollm2", vectors=Path("artifacts/demo/export")))  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from steering.serve.backend import DecodeBackend
from steering.serve.engine import Engine, Prepared, ServeLimits
from steering.serve.registry import VectorRegistry
from steering.serve.scheduler import Event, Job, QueueFull, Scheduler
from steering.serve.schema import ApiError, parse_request
from steering.serve.telemetry import CONTENT_TYPE, RequestRecord, ServeMetrics, log_request


@dataclass(frozen=True)
class ServeConfig:
    """What `workbench serve` starts: a model, a folder of vectors and gates, the limits.

    Args:
        model: as `load_model` takes it ("smollm2", a folder, a .gguf, a hub id); also the model id clients send.
        vectors: folder of native exports and probe gates (None: serve unsteered only).
        limits: max tokens, batch, queue and the request timeout.
        prefix_cache: prefill the template's shared prefix once and reuse it (`TorchBackend`).
        engine: "torch" (the HF model, `TorchBackend`) or "llamacpp" (its GGUF in llama.cpp, `LlamaCppBackend`).
    """

    model: str
    vectors: Path | None = None
    limits: ServeLimits = field(default_factory=ServeLimits)
    prefix_cache: bool = True
    engine: str = "torch"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"--engine {self.engine!r}: choose one of {', '.join(ENGINES)}")


ENGINES = ("torch", "llamacpp")


def build_app(config: ServeConfig) -> FastAPI:
    """Load the model and the vectors (refusing foreign ones), and return the app.

    Raises:
        ModelLoadError, RegistryError: the model or a vector file cannot be served.
    """
    from interp.models.loading import load_model

    model = load_model(config.model)
    registry = VectorRegistry.load(config.vectors, model) if config.vectors is not None else VectorRegistry.empty()
    engine = Engine(model, registry, config.limits, name=config.model)
    if config.engine == "llamacpp":
        from steering.serve.llamacpp_backend import llamacpp_backend

        return create_app(engine, llamacpp_backend(engine))
    return create_app(engine, prefix_cache=config.prefix_cache)


def create_app(engine: Engine, backend: DecodeBackend | None = None, prefix_cache: bool = True) -> FastAPI:
    """The app on a ready engine; its scheduler thread starts and stops with the app's lifespan.

    Args:
        engine: the model, its registry and the limits (request validation).
        backend: the decoding backend (None: `TorchBackend` on the engine's model).
        prefix_cache: with the default backend, reuse the template's shared prefix.
    """
    if backend is None:
        from steering.serve.torch_backend import TorchBackend

        backend = TorchBackend(engine.model, engine.shared_prefix() if prefix_cache else ())
    holder: list[Scheduler] = []
    metrics = ServeMetrics(lambda: holder[0].queued(), lambda: holder[0].running(), engine.limits.max_batch)
    scheduler = Scheduler(backend, engine, metrics)
    holder.append(scheduler)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with scheduler:  # on shutdown: what still waits or runs after the server's grace period hears a 503
            yield

    app = FastAPI(title="workbench serve", lifespan=lifespan)
    app.state.engine = engine
    app.state.scheduler = scheduler
    app.state.metrics = metrics

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

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

    @app.get("/health")
    async def health() -> JSONResponse:
        ok = scheduler.alive
        body = {"status": "ok" if ok else "unavailable", "model": engine.name, "queued": scheduler.queued(),
                "running": scheduler.running(), "max_batch": engine.limits.max_batch,
                "max_queue": engine.limits.max_queue}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> JSONResponse | StreamingResponse:
        record = RequestRecord(id=f"chatcmpl-{uuid.uuid4().hex[:24]}")

        def finish(job: Job | None, error: ApiError | None = None) -> None:
            _close(record, job, error)
            metrics.observe(record)
            log_request(record)

        try:
            body = parse_request(await request.body())
            record.stream, record.model = body.stream, body.model
            prepared = engine.prepare(body)
        except ApiError as e:
            finish(None, e)
            raise
        record.steering, record.prompt_tokens = prepared.steering, len(prepared.token_ids)
        events, emit = _channel()
        job = Job(prepared, emit=emit, stream=body.stream)
        try:
            scheduler.submit(job)
        except QueueFull as e:
            full = ApiError(503, str(e), code="queue_full", headers={"Retry-After": str(e.retry_after)})
            finish(None, full)
            raise full from None
        except ApiError as e:
            finish(None, e)
            raise
        reply = _Reply(record.id, engine.name, prepared)
        if body.stream:
            return StreamingResponse(_sse(reply, job, events, finish), media_type="text/event-stream")
        event: Event | None = None
        try:
            event = await _wait_done(events, request)
        finally:
            job.cancelled.set()  # a client gone (or a cancelled handler) frees its row at the next step
            finish(job, event.error if event is not None else None)
        if event is None:  # the client hung up: nobody reads an answer
            return JSONResponse({}, status_code=499)
        if event.error is not None:
            raise event.error
        return JSONResponse(reply.completion(event, job.cached_tokens))

    return app


def _channel() -> tuple[asyncio.Queue[Event], Callable[[Event], None]]:
    """A queue on this event loop and the thread-safe `emit` the scheduler's worker calls."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[Event] = asyncio.Queue()

    def emit(event: Event) -> None:
        try:
            loop.call_soon_threadsafe(events.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody listens any more
            pass

    return events, emit


async def _wait_done(events: asyncio.Queue[Event], request: Request) -> Event | None:
    """The final event of a non-streamed job, or None when the client hangs up first."""
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        while True:
            get = asyncio.ensure_future(events.get())
            await asyncio.wait({get, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not get.done():
                get.cancel()
                return None
            if (event := get.result()).kind != "delta":
                return event
    finally:
        gone.cancel()


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read, so only a disconnect is left)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _close(record: RequestRecord, job: Job | None, error: ApiError | None) -> None:
    """Fill in the record's outcome, counts and times from the job's end."""
    now = time.monotonic()
    record.duration_s = now - record.received
    if error is not None:
        record.status, record.outcome = error.status, error.code or "error"
        record.error, record.param = error.message, error.param
    if job is None:
        return
    if error is None and not job.finished or job.outcome == "cancelled":
        record.status, record.outcome = 499, "cancelled"  # the client hung up (nginx's 499)
    elif error is None:
        record.outcome = job.outcome
    record.steered = job.steered
    record.cached_tokens = job.cached_tokens
    record.completion_tokens = len(job.tokens)
    if job.admitted is not None:
        record.queue_s = job.admitted - job.submitted
    if job.first_token is not None:
        record.ttft_s = job.first_token - record.received
        end = job.done or now
        if len(job.tokens) > 1 and end > job.first_token:
            record.tokens_per_s = (len(job.tokens) - 1) / (end - job.first_token)


class _Reply:
    """OpenAI's response objects for one request."""

    def __init__(self, id: str, model: str, prepared: Prepared) -> None:
        self.id = id
        self.created = int(time.time())
        self.model = model
        self.prepared = prepared

    def steering(self, event: Event) -> dict[str, Any] | None:
        info = self.prepared.steering
        return None if info is None else {**info, "steered": event.steered}

    def usage(self, event: Event, cached: int) -> dict[str, Any]:
        prompt = len(self.prepared.token_ids)
        return {"prompt_tokens": prompt, "completion_tokens": event.completion_tokens,
                "total_tokens": prompt + event.completion_tokens, "prompt_tokens_details": {"cached_tokens": cached}}

    def completion(self, event: Event, cached: int = 0) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": event.text},
                             "finish_reason": event.finish_reason}],
                "usage": self.usage(event, cached), "steering": self.steering(event)}

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None, tail: dict[str, Any] | None = None) -> str:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **(tail or {})}
        return f"data: {json.dumps(body)}\n\n"


async def _sse(reply: _Reply, job: Job, events: asyncio.Queue[Event],
               finish: Callable[[Job | None, ApiError | None], None]) -> AsyncIterator[str]:
    """Server-sent events: a role chunk, one chunk per text delta, a final chunk, then `[DONE]`."""
    event: Event | None = None
    try:
        yield reply.chunk({"role": "assistant", "content": ""})
        while (got := await events.get()).kind == "delta":
            yield reply.chunk({"content": got.text})
        event = got
        if got.error is not None:
            yield f"data: {json.dumps(got.error.body())}\n\n"
        else:
            yield reply.chunk({}, got.finish_reason, {"usage": reply.usage(got, job.cached_tokens),
                                                      "steering": reply.steering(got)})
        yield "data: [DONE]\n\n"
    finally:
        job.cancelled.set()  # a client that hung up frees its row at the next step
        finish(job, event.error if event is not None else None)
