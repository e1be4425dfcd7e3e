"""`workbench serve --ray`: the same app as a Ray Serve deployment with N replicas.

Each replica builds the app of `steering.serve.app` on its own copy of the
model (Ray Serve's late-bound ingress: the app is built in the replica, after
its constructor), so a replica batches its own requests with its own
scheduler (continuous batching); Ray Serve's proxy spreads requests over the
replicas and applies its back-pressure. Ray Serve's `@serve.batch` is not
used: it batches whole calls, while rows join and leave the running batch at
every decode step and stream as they grow, which the scheduler does inside
the replica.

Example:
    >>> with ray_serving(ServeConfig("smollm2", Path("vectors")), "127.0.0.1", 8000, replicas=2) as url:  # doctest: +SKIP
    ...     print(url)
    http://127.0.0.1:8000
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from steering.serve.app import ServeConfig, build_app

APP_NAME = "workbench"


class WorkbenchReplica:
    """One replica: keeps the config; Ray Serve asks it for the ASGI app once the replica is up."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config

    def __serve_build_asgi_app__(self) -> Any:
        return build_app(self.config)


def ray_application(config: ServeConfig, replicas: int, num_cpus: float = 1.0) -> Any:
    """The Ray Serve application: `replicas` copies of the app, each with `num_cpus` CPUs.

    Args:
        config: model, vectors and limits, as for the local server.
        replicas: number of replicas.
        num_cpus: CPUs reserved per replica.
    """
    from ray import serve

    if replicas < 1:
        raise ValueError(f"--replicas must be >= 1, got {replicas}")
    ingress = serve.ingress()(WorkbenchReplica)
    deployment: Any = serve.deployment(ingress, name="WorkbenchServer", num_replicas=replicas,
                                       ray_actor_options={"num_cpus": num_cpus})
    return deployment.bind(config)


@contextmanager
def ray_serving(
    config: ServeConfig, host: str, port: int, replicas: int, num_cpus: float = 1.0
) -> Iterator[str]:
    """Deploy on the Ray cluster this process is connected to (or a local one); always shut Serve down.

    Args:
        config: model, vectors and limits.
        host: address Ray Serve's HTTP proxy binds.
        port: its port.
        replicas: number of replicas.
        num_cpus: CPUs reserved per replica.

    Yields:
        The base URL (`http://host:port`).
    """
    from ray import serve

    serve.start(http_options={"host": host, "port": port})
    try:
        serve.run(ray_application(config, replicas, num_cpus), name=APP_NAME, route_prefix="/")
        yield f"http://{host}:{port}"
    finally:
        serve.shutdown()
