"""The scheduler: continuous (iteration-level) batching of requests on a decoding backend, on one worker thread.

Each turn of the worker's loop:

1. admit: the requests that wait, up to the free rows (`max_batch`), are
   prefilled together and their first tokens sent; requests that arrived
   meanwhile join the same way before the next decode step;
2. sweep: rows whose client hung up (`Job.cancelled`) or whose time ran out
   (`ServeLimits.timeout_s`: a 504) are released;
3. step: one decode step of every running row; a row that produced a stop
   token or reached its `max_tokens` finishes and leaves at once.

The backend (`steering.serve.backend`) only turns rows into tokens; stop
tokens, `max_tokens`, text and its streaming are decided here. Text is sent as
it grows, holding back an incomplete UTF-8 character. The HTTP event loop
never blocks: `submit` queues (at most `max_queue` requests: `QueueFull`
beyond, a 503 with a Retry-After estimate) and events come back through each
job's `emit`. A failing prefill fails its request alone; a failing decode step
fails the rows in flight (500) and the backend starts afresh. `stop` (the app's
shutdown, after the HTTP server's grace period) ends the loop and answers
whatever still waits or runs with a 503.

Example:
    >>> with Scheduler(TorchBackend(model), engine) as scheduler:  # doctest: +SKIP
    ...     scheduler.submit(Job(engine.prepare(request), emit=print))
"""

from __future__ import annotations

import itertools
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from steering.serve.backend import DecodeBackend, RowRequest, Token
from steering.serve.engine import Engine, Prepared
from steering.serve.schema import ApiError

if TYPE_CHECKING:
    from steering.serve.telemetry import ServeMetrics

_keys = itertools.count(1)


class QueueFull(RuntimeError):
    """`max_queue` requests wait already; `retry_after` estimates the seconds until a row frees."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Event:
    """What a job hears: `delta` (new text), `done` (the whole text, finish reason, counts, whether steering
    acted), or `error`."""

    kind: str
    text: str = ""
    finish_reason: str | None = None
    completion_tokens: int = 0
    steered: bool | None = None
    error: ApiError | None = None


@dataclass(eq=False)
class Job:
    """One request in flight: its prepared input, where its events go, and its progress and times.

    Args:
        prepared: the validated request.
        emit: called (on the worker thread) with each event; must not block.
        stream: send `delta` events as the text grows (else only `done`).
    """

    prepared: Prepared
    emit: Callable[[Event], None]
    stream: bool = True
    key: int = field(default_factory=lambda: next(_keys))
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finished: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.monotonic)
    admitted: float | None = None
    first_token: float | None = None
    done: float | None = None
    steered: bool | None = None
    cached_tokens: int = 0
    outcome: str = ""  # finish reason, or the error code

    def finish(self, event: Event) -> None:
        if not self.finished:
            self.finished = True
            self.done = time.monotonic()
            self.outcome = event.finish_reason or (event.error.code or "error" if event.error else event.kind)
            self.emit(event)


class Scheduler:
    """Continuous batching of jobs on `backend` (see the module docstring).

    Args:
        backend: turns rows into tokens.
        engine: the limits, the tokenizer (text) and the stop tokens.
        metrics: step and admission counters (None: none kept).
    """

    def __init__(self, backend: DecodeBackend, engine: Engine, metrics: ServeMetrics | None = None) -> None:
        self.backend = backend
        self.limits = engine.limits
        self.tokenizer = engine.model.tokenizer
        self.stop_ids = engine.stop
        self.metrics = metrics
        self._queue: deque[Job] = deque()
        self._live: dict[int, Job] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._durations: deque[float] = deque(maxlen=32)
        self.step_rows: deque[int] = deque(maxlen=4096)  # rows of each recent decode step (tests, benchmarks)

    def __enter__(self) -> Scheduler:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="workbench-scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """End the loop after its current call; answer every job still queued or running with a 503."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        shutdown = ApiError(503, "the server is shutting down; retry on another replica or later",
                            code="shutting_down")
        with self._cond:
            left = list(self._queue) + list(self._live.values())
            self._queue.clear()
            self._live.clear()
        for job in left:
            job.finish(Event("error", error=shutdown))
        self.backend.reset()

    @property
    def alive(self) -> bool:
        """The worker runs and accepts work."""
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def submit(self, job: Job) -> None:
        """Queue `job`; it joins the running batch at the next step that has a free row.

        Raises:
            QueueFull: `max_queue` jobs wait already.
            ApiError: 503, the scheduler is stopping.
        """
        with self._cond:
            if self._stopping:
                raise ApiError(503, "the server is shutting down", code="shutting_down")
            if len(self._queue) >= self.limits.max_queue:
                raise QueueFull(f"{len(self._queue)} requests are waiting (the limit is {self.limits.max_queue}); "
                                "retry later", self._retry_after())
            self._queue.append(job)
            self._cond.notify_all()

    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def running(self) -> int:
        with self._cond:
            return len(self._live)

    def _retry_after(self) -> int:
        """Seconds until a row is likely to free: the median duration of recent requests (1 at least)."""
        recent = list(self._durations)
        return max(1, min(60, math.ceil(statistics.median(recent)))) if recent else 1

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._live and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
            try:
                self._admit_waiting()
                self._sweep()
                if self._live:
                    self._step()
            except Exception as e:  # a bug here must not leave requests hanging on a dead worker
                jobs = list(self._live.values())
                self.backend.reset()
                with self._cond:
                    self._live.clear()
                self._fail(jobs, e, release=False)

    def _waiting(self) -> list[Job]:
        """The queued jobs that may join now, in order, up to the free rows (cancelled or expired ones are
        finished on the way; a job the backend cannot take yet stops the line)."""
        jobs: list[Job] = []
        with self._cond:
            while self._queue and len(self._live) + len(jobs) < self.limits.max_batch and not self._stopping:
                job = self._queue[0]
                if job.cancelled.is_set() or self._expired(job):
                    self._queue.popleft()
                    self._end_early(job)
                    continue
                if not self.backend.can_admit(_row(job)):
                    break
                jobs.append(self._queue.popleft())
            for job in jobs:
                self._live[job.key] = job
        return jobs

    def _admit_waiting(self) -> None:
        """Admit what waits, in one prefill; repeat while more arrived meanwhile and rows are free."""
        while jobs := self._waiting():
            self._admit(jobs)

    def _admit(self, jobs: list[Job]) -> None:
        start = time.monotonic()
        for job in jobs:
            job.admitted = start
        try:
            tokens = self.backend.admit([_row(j) for j in jobs])
        except Exception as e:  # find the failing request: each alone
            if len(jobs) == 1:
                self._fail(jobs, e)
            else:
                for job in jobs:
                    self._admit([job])
            return
        now = time.monotonic()
        if self.metrics is not None:
            self.metrics.on_admit(sum(len(j.prepared.token_ids) for j in jobs), sum(t.cached for t in tokens),
                                  now - start)
        for job, token in zip(jobs, tokens, strict=True):
            job.first_token = now
            job.cached_tokens = token.cached
            self._take(job, token)

    def _sweep(self) -> None:
        """Release rows whose client is gone or whose time is up."""
        for job in list(self._live.values()):
            if job.cancelled.is_set() or self._expired(job):
                self._end_early(job)

    def _step(self) -> None:
        start = time.monotonic()
        try:
            tokens = self.backend.step()
        except Exception as e:  # not one request's fault: fail the rows in flight, start afresh
            jobs = list(self._live.values())
            self.backend.reset()
            with self._cond:
                self._live.clear()
            self._fail(jobs, e, release=False)
            return
        self.step_rows.append(len(tokens))
        if self.metrics is not None:
            self.metrics.on_step(len(tokens), time.monotonic() - start)
        for token in tokens:
            job = self._live.get(token.key)
            if job is not None:
                self._take(job, token)

    def _take(self, job: Job, token: Token) -> None:
        """One new token of `job`: a stop token or the last allowed one finishes it; else its text grows."""
        job.steered = token.steered
        if token.token in self.stop_ids and not job.prepared.ignore_eos:
            self._done(job, "stop")
            return
        job.tokens.append(token.token)
        if job.stream:
            text = self.tokenizer.decode(job.tokens, skip_special_tokens=True)
            if not text.endswith("\ufffd"):  # an incomplete UTF-8 character waits for the next token
                delta, job.text = text[len(job.text):], text
                if delta:
                    job.emit(Event("delta", text=delta))
        if len(job.tokens) >= job.prepared.max_tokens:
            self._done(job, "length")

    def _done(self, job: Job, reason: str) -> None:
        """Send what the held-back text still owes, then `done`; the row leaves."""
        text = self.tokenizer.decode(job.tokens, skip_special_tokens=True)
        if job.stream and text != job.text and text.startswith(job.text):
            job.emit(Event("delta", text=text[len(job.text):]))
        job.text = text
        self._release([job])
        job.finish(Event("done", text=text, finish_reason=reason, completion_tokens=len(job.tokens),
                         steered=job.steered))
        if job.admitted is not None and job.done is not None:
            self._durations.append(job.done - job.admitted)

    def _end_early(self, job: Job) -> None:
        """A cancelled job leaves silently (its client is gone); an expired one hears a 504."""
        self._release([job])
        if job.cancelled.is_set():
            job.outcome = "cancelled"
            job.finished, job.done = True, time.monotonic()
            return
        limit = self.limits.timeout_s
        job.finish(Event("error", error=ApiError(504, f"the request ran past the server's timeout of {limit:g} s "
                                                 f"({len(job.tokens)} tokens generated)", code="timeout")))

    def _expired(self, job: Job) -> bool:
        limit = self.limits.timeout_s
        return limit is not None and time.monotonic() - job.submitted > limit

    def _release(self, jobs: Sequence[Job]) -> None:
        live = [j.key for j in jobs if j.key in self._live]
        if live:
            self.backend.release(live)
            with self._cond:
                for key in live:
                    self._live.pop(key, None)

    def _fail(self, jobs: Sequence[Job], error: Exception, release: bool = True) -> None:
        if release:
            self._release(jobs)
        failure = ApiError(500, f"generation failed: {type(error).__name__}: {error}", code="generation_failed")
        for job in jobs:
            job.finish(Event("error", error=failure))


def _row(job: Job) -> RowRequest:
    return RowRequest(job.key, job.prepared.token_ids, job.prepared.row)
