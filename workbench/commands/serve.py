"""`workbench serve`: an OpenAI-compatible chat server whose requests choose their own steering."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from interp.models.loading import ModelLoadError
from workbench.cli import ModelOpt, app, fail

if TYPE_CHECKING:
    from steering.serve.app import ServeConfig


@app.command()
def serve(
    model: ModelOpt = "smollm2",
    vectors: Annotated[Path | None, typer.Option(help="folder of native exports (workbench export --format "
                                                      "safetensors) and probe gates; names = file names")] = None,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8000,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="most tokens one request may generate")] = 256,
    max_batch: Annotated[int, typer.Option("--max-batch", help="most requests decoded together (rows of the "
                                                               "running batch)")] = 16,
    max_queue: Annotated[int, typer.Option("--max-queue", help="most waiting requests; more are answered 503 "
                                                               "with Retry-After")] = 64,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds a request may take from arrival to its "
                                                             "last token; past it, a 504 (0: no limit)")] = 300.0,
    shutdown_grace: Annotated[int, typer.Option("--shutdown-grace", help="at Ctrl-C/SIGTERM, seconds the "
                                                "requests in flight get to finish before they are cancelled")] = 30,
    engine: Annotated[str, typer.Option("--engine", help="torch (the HF model, every steering mode and gates) | "
                                        "llamacpp (the model's GGUF in llama.cpp, `make llamacpp`: add-mode "
                                        "vectors at any positions, no gates)")] = "torch",
    prefix_cache: Annotated[bool, typer.Option("--prefix-cache/--no-prefix-cache",
                                               help="prefill the chat template's shared prefix once")] = True,
    log_requests: Annotated[bool, typer.Option("--log-requests/--no-log-requests",
                                               help="one JSON line per request on stderr")] = True,
    batch_window_ms: Annotated[float | None, typer.Option("--batch-window-ms", hidden=True,
                                                          help="ignored (continuous batching)")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="deploy on Ray Serve (the `ray` extra)")] = False,
    replicas: Annotated[int, typer.Option(help="Ray Serve replicas (with --ray)")] = 1,
) -> None:
    """Serve POST /v1/chat/completions (OpenAI's API, plus a `steering` field), /v1/models, /v1/steering/vectors,
    /health and /metrics (Prometheus). Requests join the running batch at the next decode step."""
    from steering.serve.app import ServeConfig, build_app
    from steering.serve.engine import ServeLimits

    if batch_window_ms is not None:
        typer.echo("--batch-window-ms is ignored: requests now join the running batch at the next decode step "
                   "(continuous batching), so there is no window to wait for", err=True)
    try:
        limits = ServeLimits(max_tokens, max_batch, max_queue, None if timeout == 0 else timeout)
        config = ServeConfig(model, vectors, limits, prefix_cache, engine)
    except ValueError as e:
        fail(str(e))
    if log_requests:
        _log_to_stderr()
    if ray:
        _serve_on_ray(config, host, port, replicas)
        return
    import uvicorn

    try:
        application = build_app(config)
    except (ModelLoadError, ValueError, OSError) as e:
        fail(str(e))
    typer.echo(f"serving {model} ({engine}) on http://{host}:{port}/v1 ({len(application.state.engine.registry.vectors)} "
               f"vectors, {len(application.state.engine.registry.gates)} gates)")
    uvicorn.Server(uvicorn.Config(application, host=host, port=port, log_level="warning",
                                  timeout_graceful_shutdown=shutdown_grace)).run()


def _log_to_stderr() -> None:
    """The per-request JSON lines (`steering.serve.telemetry`) go to stderr, one per line, nothing added."""
    import logging
    import sys

    from steering.serve.telemetry import LOG

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False


def _serve_on_ray(config: ServeConfig, host: str, port: int, replicas: int) -> None:
    try:
        import ray as ray_module

        from steering.serve.ray_app import ray_serving
    except ModuleNotFoundError:
        fail("--ray needs the ray extra: pip install 'sycophancy-workbench[ray]'")
    if not ray_module.is_initialized():
        ray_module.init(include_dashboard=False)
    try:
        with ray_serving(config, host, port, replicas) as url:
            typer.echo(f"serving {replicas} replica(s) on Ray Serve at {url}/v1; Ctrl-C stops")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    except (ModelLoadError, ValueError, RuntimeError) as e:
        fail(str(e))
