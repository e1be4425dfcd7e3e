"""`workbench app`: start the Streamlit app over an artifacts folder and print its URL."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli import ArtifactsOpt, app, fail


def app_script() -> Path:
    """The app's entry file (`app/main.py`), wherever the package is installed."""
    spec = importlib.util.find_spec("app")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the `app` package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "main.py"


def streamlit_command(script: Path, port: int, address: str) -> list[str]:
    """`streamlit run` with the options the workbench uses (headless: no browser, no usage stats)."""
    return [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
            "--server.port", str(port), "--server.address", address, "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "viewer"]


@app.command("app")
def app_command(
    artifacts: ArtifactsOpt = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to serve on")] = 8501,
    address: Annotated[str, typer.Option(help="address to bind (0.0.0.0 to serve other machines)")] = "localhost",
) -> None:
    """Open the app: runs, eval profile, probes, trade-off, mechanisms, live steering, export."""
    root = (artifacts or Path(os.environ.get("WORKBENCH_ARTIFACTS", "artifacts"))).resolve()
    if not root.is_dir():
        fail(f"--artifacts {root}: no such folder (make a run first, e.g. `workbench demo`)")
    try:
        script = app_script()
    except FileNotFoundError as e:
        fail(str(e))
    env = {**os.environ, "WORKBENCH_ARTIFACTS": str(root)}
    host = "localhost" if address in ("0.0.0.0", "::") else address
    typer.echo(f"workbench app: http://{host}:{port}  (artifacts: {root}; Ctrl+C stops it)")
    try:
        code = subprocess.call(streamlit_command(script, port, address), env=env)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code=code)
