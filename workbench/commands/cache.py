"""`workbench cache`: activations into artifacts/<run>/activations, resumable."""

from __future__ import annotations

from typing import Annotated

import typer

from workbench.cli import ArtifactsOpt, ModelOpt, RunOpt, app, finite


@app.command()
def cache(
    run: RunOpt,
    data: Annotated[str, typer.Option(help="a JSONL of Example records or a built-in dataset name")] = "demo",
    model: ModelOpt = "smollm2",
    sites: Annotated[str, typer.Option(help="comma list; `blocks.*.hook_resid_post` expands")] = "blocks.*.hook_resid_post",
    positions: Annotated[str, typer.Option(help="last_prompt,answer,user_claim,all")] = "last_prompt",
    backend: Annotated[str, typer.Option(help="hooks | nnsight | tl")] = "hooks",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1)] = 256,
    dtype: Annotated[str, typer.Option(help="model dtype: float32 | bfloat16 | float16")] = "float32",
    store_dtype: Annotated[str, typer.Option("--store-dtype", help="float32 | float16")] = "float32",
    limit: Annotated[int | None, typer.Option(min=1, help="use only the first N examples")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace a store made with another configuration")] = False,
    artifacts: ArtifactsOpt = None,
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N (each Ray worker: its own GPU)")] = "cpu",
    device_map: Annotated[str | None, typer.Option(
        "--device-map", help="auto: shard one model over all visible GPUs (accelerate), then RAM")] = None,
    ignore_memory_check: Annotated[bool, typer.Option(
        "--ignore-memory-check", help="load even when the estimate says the model will not fit")] = False,
    remote: Annotated[bool, typer.Option(
        help="with --backend nnsight: run the model on NDIF (hub id + NDIF_API_KEY needed)")] = False,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="ADDRESS", help="spread shards over Ray workers: local (start Ray here), auto "
        "(the running cluster or $RAY_ADDRESS) or an address like head:6379; needs the `ray` extra")] = None,
    workers: Annotated[int, typer.Option(min=1, help="with --ray: workers, each loading the model once")] = 2,
    cpus_per_worker: Annotated[int, typer.Option("--cpus-per-worker", min=1, help="with --ray")] = 1,
    gpus_per_worker: Annotated[float, typer.Option("--gpus-per-worker", min=0, callback=finite, help="with --ray (e.g. 1, or 2 with "
                                                   "--device-map auto)")] = 0.0,
) -> None:
    """Cache activations into artifacts/<run>/activations (interrupted? run it again to resume).

    Large models: --dtype bfloat16, --device cuda or --device-map auto; a memory estimate refuses a model that
    cannot fit (--ignore-memory-check to try anyway). Several machines: --ray local|auto|ADDRESS --workers N.
    No local weights at all: --backend nnsight --remote --model <hub id NDIF hosts>.
    """
    from interp.capture.ray_pool import RayOptions
    from workbench.jobs import run_cache

    options = None if ray is None else RayOptions(
        address=ray, workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)
    store = run_cache(run=run, data=data, model_spec=model, sites=sites, positions=positions,
                      backend=backend, batch_size=batch_size, shard_size=shard_size, dtype=dtype,
                      store_dtype=store_dtype, limit=limit, overwrite=overwrite, artifacts=artifacts,
                      device=device, device_map=device_map, ignore_memory_check=ignore_memory_check,
                      remote=remote, ray=options, log=typer.echo)
    typer.echo(f"activation store: {store.path} ({store.n_examples} examples, {len(store.sites)} sites)")
