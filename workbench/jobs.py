"""Batch jobs behind the CLI: load, run, record provenance, report where the outputs are."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import typer

from interp.capture.backends.remote import REMOTE_BACKEND, load_remote_model
from interp.capture.collect import CaptureConfig, capture
from interp.capture.distributed import capture_on_ray
from interp.capture.positions import parse_positions
from interp.capture.ray_pool import LOCAL, RayOptions
from interp.errors import check_count
from interp.models.memory import LoadRequest
from interp.sites import check_site_names
from interp.store.activations import ActivationStore
from interp.store.runs import prepare_run_dir, record_run
from workbench.data import resolve_examples
from workbench.progress import throughput_bar


def run_cache(
    run: str, data: str, model_spec: str, sites: str, positions: str, backend: str, batch_size: int,
    shard_size: int, dtype: str, store_dtype: str, limit: int | None, overwrite: bool, artifacts: Path | None,
    device: str = "cpu", device_map: str | None = None, ignore_memory_check: bool = False, remote: bool = False,
    ray: RayOptions | None = None, log: Callable[[str], None] | None = None,
) -> ActivationStore:
    """Validate the data first (no model work on bad input), then cache and record the run.

    Args:
        device, device_map: where the model loads ("cuda", or device_map "auto" to shard it over GPUs).
        ignore_memory_check: load even when the estimate says it will not fit.
        remote: run the model on NDIF through nnsight (backend must be "nnsight"; no local weights).
        ray: spread the shards over Ray workers (None: in this process).
        log: told about each repair a resume makes (interp.store.writer.open_store).
    """
    check_count("--limit", limit)
    check_site_names(sites)
    parse_positions(positions)
    _check_combination(backend, remote, ray, device, device_map)
    config = CaptureConfig((), (), dtype=store_dtype, batch_size=batch_size, shard_size=shard_size)
    examples = resolve_examples(data, limit=limit)
    folder = prepare_run_dir(run, artifacts, "activations")
    request = LoadRequest(model_spec, dtype=dtype, device=device, device_map=device_map,
                          memory_check=not ignore_memory_check)
    record = {"data": data, "sites": sites, "positions": positions, "backend": backend, "batch_size": batch_size,
              "shard_size": shard_size, "dtype": dtype, "store_dtype": store_dtype, "limit": limit,
              "device": device, "device_map": device_map, "remote": remote}
    if ray is not None:
        if ray.address == LOCAL and device == "cpu" and device_map is None:
            request.check(copies=ray.workers)  # local workers share this machine's RAM
        typer.echo(f"starting {ray.workers} Ray workers ({ray.address}), each loading {model_spec} ...")
        with throughput_bar(len(examples), f"cache {run}") as update:
            out = capture_on_ray(request, examples, sites, positions, folder / "activations", backend=backend,
                                 config=config, overwrite=overwrite, progress=update, options=ray)
        store, provenance = out.store, out.store.model
        record["ray"] = {**asdict(ray), "workers_seen": list(out.workers), "retried": out.retried}
    else:
        if remote:
            typer.echo(f"preparing {model_spec} for remote execution on NDIF ...")
            model, backend = load_remote_model(model_spec), REMOTE_BACKEND
        else:
            typer.echo(f"loading {model_spec} ...")
            model = request.load()
        with throughput_bar(len(examples), f"cache {run}") as update:
            store = capture(model, examples, sites, positions, folder / "activations", backend=backend,
                            config=config, overwrite=overwrite, progress=update, log=log)
        provenance = model.provenance()
    record_run(folder, "cache", record, model=provenance)
    return store


def _check_combination(
    backend: str, remote: bool, ray: RayOptions | None, device: str, device_map: str | None
) -> None:
    """Refuse option combinations that cannot work, before any model or cluster work."""
    from interp.capture.backends.registry import BACKENDS

    if backend not in BACKENDS:
        raise ValueError(f"--backend {backend!r}: choose from {', '.join(BACKENDS)}")
    if remote and backend != "nnsight":
        raise ValueError("--remote runs through nnsight on NDIF: add --backend nnsight")
    if remote and (ray is not None or device_map is not None):
        raise ValueError("--remote runs the model on NDIF's servers: drop --ray and --device-map")
    if ray is not None and ray.gpus_per_worker == 0 and (device_map is not None or device.startswith("cuda")):
        raise ValueError("--device cuda / --device-map with --ray need --gpus-per-worker (Ray hides GPUs from "
                         "actors that reserved none)")
