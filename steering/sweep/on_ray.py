"""Sweep cells on Ray actors: each actor loads the model once and evaluates whole batched passes.

`workbench sweep --ray local|auto|ADDRESS` lands here through `steering.sweep.run.run_sweep(..., ray=RayOptions(...))`.
The unit of work is a `steering.sweep.cells.SweepCell` (one vector, layer and positions rule with at most `k_batch`
steered strengths), exactly the pass `run_sweep` evaluates in process. Every actor builds the same
`CellContext` as the in-process loop (test set, prompt tokens, the frozen unsteered prefix, the strength-0
baseline and its generations; all deterministic), so its rows equal the in-process rows (every column but
`seconds`; `tests/steering/test_ray_sweep.py` checks it). Vectors travel with the cells: the driver builds
them once, on the train split. The driver is the only writer of the tables; a dead actor's cell is re-run
on a fresh one (`interp.capture.ray_pool.run_on_actors`).

Example:
    >>> out = run_cells_on_ray(LoadRequest("smollm2"), config, cells, accept, RayOptions(workers=2))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from interp.capture.ray_pool import RayOptions, raise_cause, ray_session, run_on_actors
from interp.models.memory import LoadRequest
from steering.sweep.cells import SweepCell

Accept = Callable[[SweepCell, dict[str, Any]], None]


@dataclass(frozen=True)
class RaySweepRun:
    """What `run_cells_on_ray` did: retried attempts, the workers' baseline metrics (for sweep.json), workers."""

    retried: int
    baseline: dict[str, Any]
    workers: tuple[str, ...]


class SweepWorker:
    """A Ray actor holding one model copy and its `CellContext`; a loading error is raised by `describe`."""

    def __init__(self, request: LoadRequest, config: Any, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.error: Exception | None = None
        try:
            from steering.sweep.cells import CellContext

            self.context = CellContext(request.load(), config)
        except Exception as e:  # re-raised by describe(), where Ray hands it to the driver unchanged
            self.error = e

    def describe(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return {"fingerprint": self.context.fingerprint, "baseline": self.context.baseline,
                "worker": f"{socket.gethostname()}:{os.getpid()}"}

    def run_cell(self, cell: SweepCell) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return {**self.context.evaluate(cell), "fingerprint": self.context.fingerprint}


def run_cells_on_ray(
    request: LoadRequest, config: Any, cells: Sequence[SweepCell], accept: Accept, options: RayOptions,
    fingerprint: str | None = None,
) -> RaySweepRun:
    """Evaluate `cells` on Ray actors; `accept(cell, {"rows", "gen_rows"})` runs in the driver as each finishes.

    Args:
        request: the model each actor loads (memory-checked first).
        config: the `SweepConfig`.
        cells: chunks to evaluate (see `sweep_cells`).
        accept: merges a finished chunk into the table and writes it (the driver is the only writer).
        options: Ray address, workers, retries.
        fingerprint: the driver's `config.fingerprint(...)`; actors that compute another are refused.

    Returns:
        How many cell attempts failed (a dead actor) and were re-run elsewhere, and the baseline metrics.

    Example:
        >>> run_cells_on_ray(LoadRequest("smollm2"), config, cells, accept, RayOptions(workers=2)).retried  # doctest: +SKIP
        0
    """
    if not cells:
        return RaySweepRun(0, {}, ())
    with ray_session(options) as ray:
        actor_cls = ray.remote(SweepWorker).options(num_cpus=options.cpus_per_worker,
                                                    num_gpus=options.gpus_per_worker, max_restarts=0)
        infos: list[dict[str, Any]] = []

        def ready(actors: list[Any]) -> list[Any]:
            """Wait for the actors to load and check they agree; kill them on any failure."""
            try:
                try:
                    described = ray.get([a.describe.remote() for a in actors])
                except ray.exceptions.RayTaskError as e:
                    raise_cause(e)
                expected = fingerprint or (infos or described)[0]["fingerprint"]
                for info in described:
                    if info["fingerprint"] != expected:
                        raise ValueError(f"sweep worker {info['worker']} sees another model or test set than the "
                                         "driver")
            except BaseException:
                for actor in actors:
                    ray.kill(actor, no_restart=True)
                raise
            infos.extend(described)
            return actors

        actors = ready([actor_cls.remote(request, config, options.cpus_per_worker) for _ in range(options.workers)])

        def spawn() -> Any:
            return ready([actor_cls.remote(request, config, options.cpus_per_worker)])[0]

        retried = run_on_actors(actors, spawn, list(cells), lambda actor, cell: actor.run_cell.remote(cell), accept,
                                options, label=SweepCell.describe)
    return RaySweepRun(retried, infos[0]["baseline"], tuple(info["worker"] for info in infos))


__all__ = ["RaySweepRun", "SweepWorker", "run_cells_on_ray"]
