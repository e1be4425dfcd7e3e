"""What a server reports about itself: Prometheus metrics (`GET /metrics`) and one JSON log line per request.

Metrics (Prometheus text format; `steered` is "true" when the request's
steering acted, "false" for unsteered requests, rejected ones and rows a gate
held back):

| metric | kind | meaning |
| --- | --- | --- |
| `workbench_requests_total{code,outcome,steered}` | counter | requests answered: HTTP status, and `stop`/`length`, `cancelled` (client gone), `timeout`, or the error code |
| `workbench_prompt_tokens_total{steered}` | counter | prompt tokens of admitted requests |
| `workbench_prompt_cached_tokens_total` | counter | of those, tokens whose KV came from the shared-prefix cache |
| `workbench_generated_tokens_total{steered}` | counter | tokens generated |
| `workbench_queue_depth` | gauge | requests waiting for a row |
| `workbench_running_requests` | gauge | rows in the running batch |
| `workbench_max_batch` | gauge | the row limit (`--max-batch`) |
| `workbench_time_to_first_token_seconds{steered}` | histogram | arrival to first token (queue + prefill) |
| `workbench_tokens_per_second{steered}` | histogram | per request, tokens after the first over the time after the first |
| `workbench_request_duration_seconds{steered}` | histogram | arrival to the last event |
| `workbench_queue_wait_seconds` | histogram | arrival to admission |
| `workbench_prefill_seconds` | histogram | one admission's prefill |
| `workbench_decode_step_rows` | histogram | rows per decode step (how full continuous batching keeps the batch) |
| `workbench_decode_step_seconds` | histogram | one decode step |

The log line (logger `workbench.serve.requests`, level INFO) is one JSON
object per request, written when the request ends: see `RequestRecord`.

Example:
    >>> metrics = ServeMetrics(queued=lambda: 0, running=lambda: 0, max_batch=16)
    >>> b"workbench_queue_depth 0.0" in metrics.render()
    True
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LOG = logging.getLogger("workbench.serve.requests")
CONTENT_TYPE = CONTENT_TYPE_LATEST
SECONDS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 300.0)
RATES = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass
class RequestRecord:
    """One request's log line and metric observations (times in seconds, rounded in the line).

    Args:
        id: the response id (`chatcmpl-...`).
        received: `time.monotonic()` at arrival.
    """

    id: str
    received: float = field(default_factory=time.monotonic, repr=False)
    status: int = 200
    outcome: str = ""  # stop | length | cancelled | timeout | an error code
    error: str | None = None  # the error message of a 4xx/5xx
    param: str | None = None  # the field at fault
    stream: bool | None = None
    model: str | None = None
    steering: dict[str, Any] | None = None  # vector, strength, layers, positions, mode, gate asked
    steered: bool | None = None  # whether the steering acted (None: unsteered request)
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    queue_s: float | None = None
    ttft_s: float | None = None
    duration_s: float | None = None
    tokens_per_s: float | None = None

    def line(self) -> str:
        """The JSON log line."""
        body = {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items() if k != "received"}
        return json.dumps({"event": "request", **body}, separators=(",", ":"))


class ServeMetrics:
    """The server's Prometheus metrics, in a registry of its own (one per app).

    Args:
        queued: reads the queue depth at scrape time.
        running: reads the running rows at scrape time.
        max_batch: the row limit.
    """

    def __init__(self, queued: Callable[[], int], running: Callable[[], int], max_batch: int) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("workbench_requests", "Requests answered", ["code", "outcome", "steered"], registry=r)
        self.prompt_tokens = Counter("workbench_prompt_tokens", "Prompt tokens of admitted requests", ["steered"],
                                     registry=r)
        self.cached_tokens = Counter("workbench_prompt_cached_tokens",
                                     "Prompt tokens whose KV came from the shared-prefix cache", registry=r)
        self.generated = Counter("workbench_generated_tokens", "Tokens generated", ["steered"], registry=r)
        Gauge("workbench_queue_depth", "Requests waiting for a row", registry=r).set_function(queued)
        Gauge("workbench_running_requests", "Rows in the running batch", registry=r).set_function(running)
        Gauge("workbench_max_batch", "Row limit of the running batch", registry=r).set(max_batch)
        self.ttft = Histogram("workbench_time_to_first_token_seconds", "Arrival to first token", ["steered"],
                              buckets=SECONDS, registry=r)
        self.rate = Histogram("workbench_tokens_per_second", "Per request: tokens after the first per second",
                              ["steered"], buckets=RATES, registry=r)
        self.duration = Histogram("workbench_request_duration_seconds", "Arrival to the last event", ["steered"],
                                  buckets=SECONDS, registry=r)
        self.queue_wait = Histogram("workbench_queue_wait_seconds", "Arrival to admission", buckets=SECONDS,
                                    registry=r)
        self.prefill = Histogram("workbench_prefill_seconds", "One admission's prefill", buckets=SECONDS, registry=r)
        self.step_rows = Histogram("workbench_decode_step_rows", "Rows per decode step", buckets=ROWS, registry=r)
        self.step_time = Histogram("workbench_decode_step_seconds", "One decode step", buckets=SECONDS, registry=r)

    def on_admit(self, prompt_tokens: int, cached: int, seconds: float) -> None:
        """A row joined: its prefill (called by the scheduler's worker)."""
        self.cached_tokens.inc(cached)
        self.prefill.observe(seconds)

    def on_step(self, rows: int, seconds: float) -> None:
        """A decode step of `rows` rows (called by the scheduler's worker)."""
        self.step_rows.observe(rows)
        self.step_time.observe(seconds)

    def observe(self, record: RequestRecord) -> None:
        """A request ended: count it and its tokens, and observe its times."""
        steered = "true" if record.steered else "false"
        self.requests.labels(str(record.status), record.outcome or "error", steered).inc()
        if record.queue_s is None:  # rejected before it was queued, or never admitted
            return
        self.queue_wait.observe(record.queue_s)
        self.prompt_tokens.labels(steered).inc(record.prompt_tokens)
        self.generated.labels(steered).inc(record.completion_tokens)
        if record.ttft_s is not None:
            self.ttft.labels(steered).observe(record.ttft_s)
        if record.tokens_per_s is not None:
            self.rate.labels(steered).observe(record.tokens_per_s)
        if record.duration_s is not None:
            self.duration.labels(steered).observe(record.duration_s)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def log_request(record: RequestRecord) -> None:
    """Write the request's JSON line to the `workbench.serve.requests` logger."""
    LOG.info(record.line())
