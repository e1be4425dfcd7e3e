"""Run the app on uvicorn in a background thread of this process (tests, benchmarks, notebooks).

Example:
    >>> with serving(create_app(engine)) as url:  # doctest: +SKIP
    ...     OpenAI(base_url=f"{url}/v1", api_key="none").models.list()
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


@contextmanager
def serving(app: FastAPI, host: str = "127.0.0.1", port: int = 0, grace_s: int | None = 30) -> Iterator[str]:
    """Serve `app` until the block ends; the server is always shut down and its thread joined.

    At the end, uvicorn stops accepting connections and gives the requests in
    flight `grace_s` seconds to finish, then cancels them (their rows are
    freed), then the app's shutdown stops its scheduler.

    Args:
        app: the ASGI app.
        host: address to bind.
        port: port to bind (0: a free one, chosen by the OS).
        grace_s: seconds the requests in flight get to finish at shutdown (None: as long as they take).

    Yields:
        The base URL, e.g. `http://127.0.0.1:43125`.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=grace_s))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="workbench-uvicorn", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server thread ended before it started (see its log)")
            thread.join(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()
