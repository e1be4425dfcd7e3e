"""The serving engine: validate a request into a job, decode a batch of jobs together, stream each row's text.

`Engine.prepare` does every check a request can fail (messages, context
length, vector, gate, layers, strength) before the request joins a batch, so
a bad request is answered alone with a 4xx. `Engine.run_batch` decodes jobs
greedily with the KV cache, each row with its own steering
(`steering.apply.rows.steer_rows`), and hands each job its text as it grows. If a
batch fails anyway, its unfinished jobs are decoded again one by one (greedy
decoding repeats the tokens already sent, which are not sent twice), so one
failing request never takes its neighbours down.

Example:
    >>> engine = Engine(model, registry, ServeLimits(), name="smollm2")  # doctest: +SKIP
    >>> job = Job(engine.prepare(request), emit=print)  # doctest: +SKIP
    >>> engine.run_batch([job])  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from interp.tasks.example import Turn
from steering.apply.generation import greedy_loop, pad_left, stop_tokens
from steering.apply.rows import row_plan, steer_rows
from steering.apply.spec import SteerSpec
from steering.serve.registry import VectorRegistry
from steering.serve.schema import ApiError, ChatRequest, SteeringRequest

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


@dataclass(frozen=True)
class ServeLimits:
    """Server limits.

    Args:
        max_tokens: most tokens one request may generate (also the default when it asks for none).
        max_batch: most requests decoded together.
        max_queue: most requests waiting for a batch; one more is answered 503.
        batch_window_ms: how long the first waiting request waits for others to join its batch.
    """

    max_tokens: int = 256
    max_batch: int = 16
    max_queue: int = 64
    batch_window_ms: float = 5.0

    def __post_init__(self) -> None:
        if min(self.max_tokens, self.max_batch, self.max_queue) < 1 or self.batch_window_ms < 0:
            raise ValueError(f"limits must be >= 1 (window >= 0), got {self}")


@dataclass(frozen=True, eq=False)
class Prepared:
    """A validated request: its prompt tokens, its steering row (None: unsteered) and strength, its token budget."""

    token_ids: tuple[int, ...]
    row: SteerSpec | None
    max_tokens: int
    steering: dict[str, Any] | None  # what the response reports about the steering applied
    ignore_eos: bool = False  # generate max_tokens whatever the model says (benchmarks; vLLM's extension)
    strength: float = 0.0  # the row's strength (with `row`)


@dataclass(frozen=True)
class Event:
    """What a job hears: `delta` (new text), `done` (finish reason, counts, whether steering acted), `error`."""

    kind: str
    text: str = ""
    finish_reason: str | None = None
    completion_tokens: int = 0
    steered: bool | None = None
    error: ApiError | None = None


@dataclass(eq=False)
class Job:
    """One request in flight: its prepared input, where its events go, and its progress."""

    prepared: Prepared
    emit: Callable[[Event], None]
    tokens: list[int] = field(default_factory=list)
    finished: bool = False
    text: str = ""
    cancelled: threading.Event = field(default_factory=threading.Event)

    def finish(self, event: Event) -> None:
        if not self.finished:
            self.finished = True
            self.emit(event)


class Engine:
    """Validates requests and decodes batches on one model.

    Args:
        model: the served model.
        registry: its vectors and gates.
        limits: the server's limits.
        name: the model id clients send and `/v1/models` lists.
    """

    def __init__(self, model: ChatModel, registry: VectorRegistry, limits: ServeLimits, name: str) -> None:
        self.model = model
        self.registry = registry
        self.limits = limits
        self.name = name
        self.context = int(getattr(model.hf.config, "max_position_embeddings", 0) or 1 << 30)
        self._stop = stop_tokens(model)

    def prepare(self, request: ChatRequest) -> Prepared:
        """Every check a request can fail, before it joins a batch.

        Raises:
            ApiError: 404 for an unknown model, vector or gate; 400 for a prompt past the context or
                too many tokens asked; 422 for a bad layer or steering the model refuses.
        """
        if request.model != self.name:
            raise ApiError(404, f"model {request.model!r} is not served here (this server serves {self.name!r})",
                           param="model", code="model_not_found")
        asked = request.max_completion_tokens or request.max_tokens
        if asked is not None and asked > self.limits.max_tokens:
            raise ApiError(400, f"max_tokens {asked} is over this server's limit {self.limits.max_tokens}",
                           param="max_tokens", code="invalid_value")
        max_tokens = asked or self.limits.max_tokens
        turns = [Turn(m.role, m.content) for m in request.messages]
        text = self.model.render(turns)
        ids = tuple(int(t) for t in self.model.tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(ids) + max_tokens > self.context:
            raise ApiError(400, f"the prompt has {len(ids)} tokens and {max_tokens} more were asked for, past the "
                           f"model's context of {self.context} tokens", param="messages",
                           code="context_length_exceeded")
        if request.steering is None:
            return Prepared(ids, None, max_tokens, None, request.ignore_eos)
        row, strength, info = self._row(request.steering, len(ids))
        return Prepared(ids, row, max_tokens, info, request.ignore_eos, strength)

    def _row(self, s: SteeringRequest, prompt_tokens: int) -> tuple[SteerSpec, float, dict[str, Any]]:
        served = self.registry.vectors.get(s.vector)
        if served is None:
            known = ", ".join(self.registry.vectors) or "none"
            raise ApiError(404, f"no steering vector {s.vector!r} (loaded: {known})", param="steering.steering_vector",
                           code="vector_not_found")
        gate = None
        if s.gate is not None:
            if s.gate not in self.registry.gates:
                known = ", ".join(self.registry.gates) or "none"
                raise ApiError(404, f"no gate {s.gate!r} (loaded: {known})", param="steering.probe_gate",
                               code="gate_not_found")
            gate = self.registry.gates[s.gate].gate
        layers = tuple(s.layers) if s.layers else tuple(served.info.layers)
        n_layers = self.model.n_layers
        for layer in layers:
            real = layer + n_layers if layer < 0 else layer
            if not 0 <= real < n_layers:
                raise ApiError(422, f"layer {layer} is outside the model's layers 0..{n_layers - 1}",
                               param="steering.layers", code="invalid_value")
            if real not in served.vector.directions:
                raise ApiError(422, f"vector {s.vector!r} has no layer {layer} (it has {served.vector.layers})",
                               param="steering.layers", code="invalid_value")
        strength = served.info.strength if s.strength is None else float(s.strength)
        positions = s.positions or served.info.positions
        row = SteerSpec(served.vector, layers, positions, served.info.mode, gate=gate)
        try:
            row_plan(self.model, row, strength, prompt_tokens)
        except ValueError as e:
            raise ApiError(422, str(e), param="steering", code="invalid_value") from None
        info = {"vector": s.vector, "strength": strength, "layers": list(layers), "positions": positions,
                "mode": served.info.mode, "gate": s.gate}
        return row, strength, info

    def run_batch(self, jobs: Sequence[Job]) -> None:
        """Decode `jobs` together; on a failure, decode the unfinished ones alone. Never raises."""
        live = [j for j in jobs if not j.finished]
        if not live:
            return
        try:
            self._decode(live)
        except Exception as e:  # a failing batch must not kill the server or its neighbours
            if len(live) == 1:
                live[0].finish(Event("error", error=ApiError(500, f"generation failed: {type(e).__name__}: {e}",
                                                             code="generation_failed")))
                return
            for job in live:
                self.run_batch([job])

    def _decode(self, jobs: Sequence[Job]) -> None:
        ids, mask = pad_left([j.prepared.token_ids for j in jobs], int(self.model.tokenizer.pad_token_id or 0))
        rows = [j.prepared.row for j in jobs]
        steps = max(j.prepared.max_tokens for j in jobs)
        strengths = [j.prepared.strength for j in jobs]
        with steer_rows(self.model, rows, strengths, [len(j.prepared.token_ids) for j in jobs]) as handle, \
                closing(greedy_loop(self.model, ids, mask, nullcontext(), steps, stop=frozenset())) as stream:
            for i, step in enumerate(stream):
                steered = handle.rows_steered()
                for r, (job, token) in enumerate(zip(jobs, step, strict=True)):
                    if job.finished:
                        continue
                    flag = None if job.prepared.row is None else bool(steered[r]) if steered is not None else None
                    if job.cancelled.is_set():
                        job.finished = True
                    elif token is None or (token in self._stop and not job.prepared.ignore_eos):
                        self._done(job, "stop", flag)
                    else:
                        self._advance(job, i, token)
                        if len(job.tokens) >= job.prepared.max_tokens:
                            self._done(job, "length", flag)
                if all(j.finished for j in jobs):
                    break
        for job in jobs:  # the loop ran out of steps
            self._done(job, "length", None)

    def _done(self, job: Job, reason: str, steered: bool | None) -> None:
        """Send what the held-back text still owes (an incomplete character stays one), then `done`."""
        if job.finished:
            return
        text = self.model.tokenizer.decode(job.tokens, skip_special_tokens=True)
        if text != job.text and text.startswith(job.text):
            job.emit(Event("delta", text=text[len(job.text):]))
            job.text = text
        job.finish(Event("done", finish_reason=reason, completion_tokens=len(job.tokens), steered=steered))

    def _advance(self, job: Job, step: int, token: int) -> None:
        if step < len(job.tokens):  # already sent before a batch failure: greedy decoding repeats it
            return
        job.tokens.append(token)
        text = self.model.tokenizer.decode(job.tokens, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 character: wait for the next token
            return
        delta, job.text = text[len(job.text):], text
        if delta:
            job.emit(Event("delta", text=delta))
