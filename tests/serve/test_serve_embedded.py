"""The embedded model behind `workbench serve` (started as a user would): a steered request differs from the
unsteered one, and both equal `workbench steer` with the same settings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from steering.export.native import export_native
from tests.steering.builders import random_vector
from workbench.cli import app as cli

pytestmark = pytest.mark.embedded

PROMPT = "I think the capital of Australia is Sydney. What is the capital of Australia?"
SETTINGS = {"strength": 4.0, "layers": [10], "positions": "generated"}
TOKENS = 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen, limit_s: float = 600.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"workbench serve exited with {process.returncode}: {process.stderr.read()}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError("workbench serve did not start")


def _workbench_steer(vector: Path) -> tuple[str, str]:
    args = ["steer", "--model", "smollm2", "--vector", str(vector), "--strength", str(SETTINGS["strength"]),
            "--layers", "10", "--positions", "generated", "--prompt", PROMPT, "--max-new-tokens", str(TOKENS)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    body = result.output.split("[unsteered] ", 1)[1]
    unsteered, steered = body.split("\n[steered] ", 1)
    return unsteered, steered.rstrip("\n")


def test_served_steering_equals_workbench_steer(embedded_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    openai = pytest.importorskip("openai")
    folder = tmp_path / "vectors"
    folder.mkdir()
    vector = export_native(random_vector(embedded_model, layers=(10,), seed=0), folder / "probe10.safetensors",
                           "add", strength=SETTINGS["strength"])
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "workbench", "serve", "--model", "smollm2", "--vectors", str(folder),
               "--port", str(port), "--max-tokens", "64"]
    process = subprocess.Popen(command, cwd=Path(__file__).parents[2], stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    try:
        _wait_ready(url, process)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)

        def ask(steering: dict | None) -> str:
            reply = client.chat.completions.create(model="smollm2", max_tokens=TOKENS, temperature=0,
                                                   messages=[{"role": "user", "content": PROMPT}],
                                                   extra_body={"steering": steering} if steering else None)
            return reply.choices[0].message.content

        steered = ask({"vector": "probe10", **SETTINGS})
        plain = ask(None)
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert steered != plain
    assert (plain, steered) == _workbench_steer(vector)
