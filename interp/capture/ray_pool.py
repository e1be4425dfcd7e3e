"""A small pool of Ray actors that each hold a model: tasks in, results out, crashed actors replaced.

Ray is an optional extra (`pip install '.[ray]'`); it is imported only when a
pool is used. The pool gives each actor one task at a time (so a slow actor
takes fewer), re-submits the task of an actor that died (process crash, node
loss, `ray.kill`) to another actor and starts a replacement, up to
`max_retries` attempts per task and `max_restarts` replacements per job. A task
that *raises* (bad data, a shard that disagrees) is not retried: its error is
re-raised in the driver as the original exception type.

Example:
    >>> ray = require_ray()  # doctest: +SKIP
    >>> with ray_session(RayOptions(address="local", workers=2)):  # doctest: +SKIP
    ...     run_on_actors(actors, spawn, tasks, submit=lambda a, t: a.run.remote(t), accept=store_result,
    ...                   options=RayOptions(), label=str)
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
LOCAL = "local"


class RayUnavailableError(RuntimeError):
    """Ray is not installed; the message says how to install the extra."""


class RayJobError(RuntimeError):
    """A distributed job could not finish: a task failed too often, or every worker died."""


class TaskRejected(RuntimeError):
    """Raised by an `accept` callback: the result is unusable (e.g. a shard file that disagrees); retry the task."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run.

    Args:
        address: "local" (start a private Ray on this machine with `workers * cpus_per_worker` CPUs),
            "auto" (the cluster `ray start` made on this machine, or $RAY_ADDRESS), or an address
            such as "ray://head:10001" or "head:6379".
        workers: actors, each holding one copy of the model.
        cpus_per_worker: CPUs reserved per actor (also its torch thread count).
        gpus_per_worker: GPUs reserved per actor (Ray sets CUDA_VISIBLE_DEVICES for it).
        max_retries: extra attempts of a task whose actor died.
        max_restarts: replacement actors started over the whole job.
    """

    address: str = LOCAL
    workers: int = 2
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    max_retries: int = 2
    max_restarts: int = 2

    def __post_init__(self) -> None:
        if self.workers < 1 or self.cpus_per_worker < 1:
            raise ValueError("workers and cpus_per_worker must be >= 1")
        if self.gpus_per_worker < 0 or self.max_retries < 0 or self.max_restarts < 0:
            raise ValueError("gpus_per_worker, max_retries and max_restarts must be >= 0")


def require_ray() -> types.ModuleType:
    """Import Ray, or fail with how to install it.

    Example:
        >>> ray = require_ray()  # doctest: +SKIP
    """
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(
            "--ray needs Ray, an optional extra: pip install '.[ray]' (or pip install 'ray==2.60.0')"
        ) from None
    return ray


@contextmanager
def ray_session(options: RayOptions) -> Iterator[types.ModuleType]:
    """Use the Ray already initialised in this process, or start/connect one and shut it down afterwards.

    Example:
        >>> with ray_session(RayOptions(workers=2)) as ray:  # doctest: +SKIP
        ...     ray.cluster_resources()["CPU"]
        2.0
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if options.address == LOCAL:
        ray.init(num_cpus=options.workers * options.cpus_per_worker, include_dashboard=False, log_to_driver=False)
    else:
        try:
            ray.init(address=options.address, log_to_driver=False)
        except ConnectionError as e:
            raise RayJobError(f"--ray {options.address}: no Ray cluster reachable ({e}); start one with "
                              "`ray start --head` on the head node, or use --ray local") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def raise_cause(error: BaseException) -> None:
    """Re-raise the exception a remote task raised as itself (a ValueError stays a ValueError)."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        raise cause from None
    raise error


def _crashed(ray: types.ModuleType, error: BaseException) -> bool:
    """Did the actor (or its node) die, as opposed to the task raising?"""
    e = ray.exceptions
    return isinstance(error, (e.RayActorError, e.WorkerCrashedError, e.NodeDiedError, e.OutOfMemoryError,
                              e.ObjectLostError))


def run_on_actors(
    actors: list[Any],
    spawn: Callable[[], Any] | None,
    tasks: Sequence[T],
    submit: Callable[[Any, T], Any],
    accept: Callable[[T, Any], None],
    options: RayOptions,
    label: Callable[[T], str],
) -> int:
    """Run every task on the actors, one at a time per actor; return how many attempts failed and were retried.

    Args:
        actors: ready actor handles (the pool takes ownership and kills them at the end).
        spawn: starts and checks a replacement actor (None: never replace).
        tasks: work items, submitted in order.
        submit: `submit(actor, task)` returns the task's ObjectRef.
        accept: called in the driver with each result, in completion order; raise
            `TaskRejected` to retry the task, anything else to stop the job.
        options: retry and restart budgets.
        label: names a task in error messages.

    Raises:
        RayJobError: a task failed more than `max_retries` times, or every actor died.
        Exception: what a task or `accept` raised (not retried).
    """
    ray = require_ray()
    queue = list(reversed(range(len(tasks))))  # indices; pop() takes the next
    attempts: dict[int, int] = {}
    errors: dict[int, str] = {}
    inflight: dict[Any, tuple[Any, int]] = {}
    idle = list(actors)
    restarts = failures = 0
    try:
        while queue or inflight:
            while queue and idle:
                actor, key = idle.pop(0), queue.pop()
                inflight[submit(actor, tasks[key])] = (actor, key)
            if not inflight:
                last = list(errors.values())[-1] if errors else "none"
                raise RayJobError(f"every Ray worker died; {len(queue)} tasks left (last error: {last})")
            done, _ = ray.wait(list(inflight), num_returns=1)
            actor, key = inflight.pop(done[0])
            task = tasks[key]
            try:
                accept(task, ray.get(done[0]))
                idle.append(actor)
                continue
            except TaskRejected as e:
                idle.append(actor)
                errors[key] = str(e)
            except Exception as e:
                if not _crashed(ray, e):
                    raise_cause(e)
                errors[key] = f"{type(e).__name__}: {e}".splitlines()[0]
                ray.kill(actor, no_restart=True)
                if spawn is not None and restarts < options.max_restarts:
                    restarts += 1
                    try:
                        idle.append(spawn())
                    except Exception as spawn_error:  # carry on with the actors left
                        errors[key] += f"; its replacement failed: {type(spawn_error).__name__}: {spawn_error}"
            failures += 1
            attempts[key] = attempts.get(key, 0) + 1
            if attempts[key] > options.max_retries:
                raise RayJobError(f"{label(task)} failed {attempts[key]} times; last error: {errors[key]}")
            queue.append(key)
    finally:
        for actor in [*idle, *(a for a, _ in inflight.values())]:
            ray.kill(actor, no_restart=True)
    return failures


__all__ = ["LOCAL", "RayJobError", "RayOptions", "RayUnavailableError", "TaskRejected", "raise_cause", "ray_session", "require_ray",
           "run_on_actors"]
