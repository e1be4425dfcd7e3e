"""Cache activations with Ray workers into one ActivationStore, equal bit for bit to `capture`'s.

Each worker is a Ray actor that loads the model once (`LoadRequest.load`, memory
checked first) and computes whole shards with `interp.capture.collect.compute_shard`,
the same function the in-process path calls: same shard boundaries, same
length-sorted batches, same bytes. Workers write their shard files atomically
into the store folder (a filesystem every node shares); only the driver
writes `manifest.json`: it checks every returned record against its file
(name, range, bytes, rows) before listing it, and marks the store complete
once all shards are listed and agree (`interp.store.writer.commit`).

Agreement: every worker computes the store fingerprint from its own model
copy (weights hash + data hash + config); a worker whose fingerprint differs
(another checkpoint on that node) is refused before it computes anything.

Failures: a worker that dies mid-shard leaves at most a temp file; its shard
goes to another worker and a replacement actor starts (`interp.capture.ray_pool`).
A store started in-process resumes under Ray and the other way round.

Example:
    >>> result = capture_on_ray(LoadRequest("smollm2"), examples, "blocks.*.hook_resid_post", "last_prompt",
    ...                         "artifacts/demo/activations", options=RayOptions(workers=2))  # doctest: +SKIP
    >>> result.store.n_examples  # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interp.capture.collect import CaptureConfig, ProgressFn, compute_shard, manifest_seed, resolve_config, validate
from interp.capture.positions import parse_positions
from interp.capture.ray_pool import RayOptions, TaskRejected, raise_cause, ray_session, run_on_actors
from interp.models.memory import LoadRequest
from interp.store.activations import ActivationStore, StoreError, shard_name
from interp.store.writer import (
    ShardRange,
    add_shard,
    check_shard_record,
    commit,
    open_store,
    pending_shards,
    write_capture_shard,
)
from interp.tasks.example import Example


@dataclass(frozen=True, eq=False)
class DistributedCapture:
    """What `capture_on_ray` did: the store, which workers ran, how many shard attempts were retried, and timing."""

    store: ActivationStore
    workers: tuple[str, ...]  # "host:pid" of each actor that described itself
    retried: int
    shards_run: int
    seconds: float  # the whole call
    ready_seconds: float  # until every worker had loaded the model (cluster start included)


class CaptureWorker:
    """One model copy (a Ray actor in practice; a plain object in unit tests).

    Args:
        request: what to load (memory-checked first).
        examples: every example of the store.
        sites, positions, config, backend: as for `interp.capture.collect.capture`.
        folder: the store folder, on a filesystem this worker shares with the driver.
        threads: torch threads (the CPUs Ray reserved for this actor).
        crash_marker: TEST ONLY: the first worker to create this file dies (os._exit) halfway
            through writing its first shard, leaving a torn temp file behind.

    An error while loading is kept and raised by `describe`, so the driver sees it as itself.
    """

    def __init__(
        self, request: LoadRequest, examples: list[Example], sites: list[str] | str, positions: list[str] | str,
        config: CaptureConfig | None, backend: str, folder: str, threads: int, crash_marker: str | None = None,
    ) -> None:
        import torch

        from interp.capture.backends import make_backend

        torch.set_num_threads(threads)
        self.folder, self.examples, self.crash_marker = Path(folder), examples, crash_marker
        self.error: Exception | None = None
        try:
            self.model = request.load()
            self.config = resolve_config(self.model, sites, positions, config)
            self.encoded = validate(self.model, examples, parse_positions(list(self.config.positions)))
            self.seed = manifest_seed(self.model, examples, self.config, backend)
            self.engine = make_backend(backend)
        except Exception as e:  # re-raised by describe(), where Ray hands it to the driver unchanged
            self.error = e

    def describe(self) -> dict[str, Any]:
        """`{"seed": manifest seed, "worker": "host:pid"}`; raises what loading raised."""
        if self.error is not None:
            raise self.error
        return {"seed": self.seed, "worker": f"{socket.gethostname()}:{os.getpid()}"}

    def run_shard(self, shard: ShardRange) -> dict[str, Any]:
        """Compute and write one shard; return its record, the worker's fingerprint and token count."""
        if self.error is not None:
            raise self.error
        tokens = 0

        def count(_examples: int, n_tokens: int) -> None:
            nonlocal tokens
            tokens += n_tokens

        t0 = time.perf_counter()
        tensors = compute_shard(self.model, self.examples, self.encoded, shard, self.config, self.engine, count)
        if self.crash_marker is not None and _claim(Path(self.crash_marker)):
            _die_mid_write(self.folder, shard, tensors)
        record = write_capture_shard(self.folder, shard, tensors)
        return {"record": record, "fingerprint": self.seed["fingerprint"], "tokens": tokens,
                "seconds": time.perf_counter() - t0, "worker": f"{socket.gethostname()}:{os.getpid()}"}


def _claim(marker: Path) -> bool:
    """Create `marker` if absent (atomically across processes); True for the one caller that created it."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _die_mid_write(folder: Path, shard: ShardRange, tensors: dict[str, np.ndarray]) -> None:
    """Fault injection: write half of the shard to its temp file, then exit the process without cleanup."""
    from safetensors.numpy import save_file

    from interp.store.atomic import atomic_path

    with atomic_path(folder / shard_name(shard.index)) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
        tmp.write_bytes(tmp.read_bytes()[: tmp.stat().st_size // 2])
        os._exit(1)


def capture_on_ray(
    request: LoadRequest,
    examples: list[Example],
    sites: list[str] | str,
    positions: list[str] | str,
    out_dir: str | Path,
    backend: str = "hooks",
    config: CaptureConfig | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    options: RayOptions | None = None,
    crash_marker: str | None = None,
) -> DistributedCapture:
    """`interp.capture.collect.capture` with the shards spread over Ray actors.

    The parameters mirror `capture`'s on purpose (a caller switches by the function's name), and so
    does the work per shard: both call `compute_shard` then `write_capture_shard`; only who calls them
    (the driver's loop there, a worker here, its record checked by the driver) differs.

    Args:
        request: the model each worker loads (spec, dtype, device, device_map, memory check).
        examples, sites, positions, out_dir, backend, config, overwrite: as for `capture`.
        progress: called in the driver after each shard with (examples, tokens).
        options: cluster address, workers, CPUs/GPUs per worker, retry budgets.
        crash_marker: TEST ONLY, see `CaptureWorker`.

    Raises:
        RayUnavailableError: Ray is not installed.
        StoreError: a store with another configuration is there, or workers disagree on the model.
        ModelLoadError, MemoryCheckError, ValueError: from a worker, as raised there.

    Example:
        >>> out = capture_on_ray(LoadRequest("smollm2"), examples, "blocks.*.hook_resid_post", "last_prompt",
        ...                      "artifacts/x/activations", options=RayOptions(address="local", workers=2))  # doctest: +SKIP
    """
    options = options or RayOptions()
    parse_positions(positions)  # a bad position fails here, before any cluster or model work
    folder = Path(out_dir).resolve()
    start = time.perf_counter()
    with ray_session(options) as ray:
        examples_ref = ray.put(examples)
        actor_cls = ray.remote(CaptureWorker).options(
            num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker, max_restarts=0, max_task_retries=0)

        def start_actor() -> Any:
            return actor_cls.remote(request, examples_ref, sites, positions, config, backend, str(folder),
                                    options.cpus_per_worker, crash_marker)

        actors = [start_actor() for _ in range(options.workers)]
        try:
            infos = _describe(ray, actors)
            ready = time.perf_counter() - start
            seed = infos[0]["seed"]
            _check_agreement(infos)
            manifest = open_store(folder, examples, seed, overwrite)
        except BaseException:
            _kill(ray, actors)
            raise
        workers = [info["worker"] for info in infos]

        def spawn() -> Any:
            actor = start_actor()
            try:
                info = _describe(ray, [actor])[0]
                _check_agreement([infos[0], info])
            except BaseException:
                _kill(ray, [actor])
                raise
            workers.append(info["worker"])
            return actor

        todo = [] if manifest["complete"] else pending_shards(manifest)

        def accept(shard: ShardRange, result: dict[str, Any]) -> None:
            nonlocal manifest
            if result["fingerprint"] != seed["fingerprint"]:
                raise StoreError(f"{folder}: worker {result['worker']} computed {shard_name(shard.index)} "
                                 "with another model or configuration")
            try:
                check_shard_record(folder, result["record"], shard)
            except StoreError as e:
                raise TaskRejected(str(e)) from None
            manifest = add_shard(folder, manifest, result["record"])
            if progress:
                progress(shard.stop - shard.start, int(result["tokens"]))

        retried = run_on_actors(actors, spawn, todo, lambda actor, shard: actor.run_shard.remote(shard), accept,
                                options, label=lambda shard: f"shard {shard_name(shard.index)}")
    store = ActivationStore(folder) if manifest["complete"] else commit(folder, manifest)
    return DistributedCapture(store, tuple(workers), retried, len(todo), time.perf_counter() - start, ready)


def _kill(ray: Any, actors: list[Any]) -> None:
    for actor in actors:
        ray.kill(actor, no_restart=True)


def _describe(ray: Any, actors: list[Any]) -> list[dict[str, Any]]:
    """Wait for the actors to load; re-raise a loading error as itself."""
    try:
        return list(ray.get([actor.describe.remote() for actor in actors]))
    except ray.exceptions.RayTaskError as e:
        raise_cause(e)
        raise  # unreachable: raise_cause always raises


def _check_agreement(infos: list[dict[str, Any]]) -> None:
    """Refuse workers whose model or configuration gives another fingerprint than the first one's."""
    first = infos[0]["seed"]
    for info in infos[1:]:
        if info["seed"]["fingerprint"] != first["fingerprint"]:
            theirs, ours = info["seed"]["model"], first["model"]
            raise StoreError(
                f"Ray workers disagree: {infos[0]['worker']} loaded weights {ours.get('weights_hash', '')[:12]} "
                f"from {ours.get('source')}, {info['worker']} loaded {theirs.get('weights_hash', '')[:12]} from "
                f"{theirs.get('source')}; every node must see the same model files")


__all__ = ["CaptureWorker", "DistributedCapture", "capture_on_ray"]
