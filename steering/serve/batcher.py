"""The local batcher: requests that arrive within a few milliseconds are decoded together on one thread.

The model runs on one worker thread, so the event loop that speaks HTTP never
blocks. The first waiting job opens a window (`ServeLimits.batch_window_ms`);
every job that arrives before it closes, up to `max_batch`, joins the batch.
A batch runs to its end (static batching); jobs that arrive meanwhile wait for
the next one, at most `max_queue` of them (`QueueFull` beyond: a 503).

Example:
    >>> with Batcher(engine) as batcher:  # doctest: +SKIP
    ...     batcher.submit(job)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from types import TracebackType

from steering.serve.engine import Engine, Job


class QueueFull(RuntimeError):
    """The queue holds `max_queue` jobs already."""


class Batcher:
    """Gathers jobs into batches and runs them on a worker thread.

    Args:
        engine: decodes the batches (its `limits` give the window, batch and queue sizes).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batch_sizes: list[int] = []  # every batch run, for tests and benchmarks

    def __enter__(self) -> Batcher:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="workbench-batcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish the batch in flight, end the worker, and cancel what still waits."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        while self._queue:
            self._queue.popleft().cancelled.set()

    def submit(self, job: Job) -> None:
        """Queue `job` for the next batch.

        Raises:
            QueueFull: `max_queue` jobs wait already.
        """
        with self._cond:
            if len(self._queue) >= self.engine.limits.max_queue:
                raise QueueFull(f"{len(self._queue)} requests are waiting (the limit is "
                                f"{self.engine.limits.max_queue}); retry later")
            self._queue.append(job)
            self._cond.notify_all()

    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def _take(self) -> list[Job] | None:
        limits = self.engine.limits
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            deadline = time.monotonic() + limits.batch_window_ms / 1000
            while len(self._queue) < limits.max_batch and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            n = min(len(self._queue), limits.max_batch)
            return [self._queue.popleft() for _ in range(n)]

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            batch = [j for j in batch if not j.cancelled.is_set()]
            if batch:
                self.batch_sizes.append(len(batch))
                self.engine.run_batch(batch)
