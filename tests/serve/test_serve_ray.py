"""`workbench serve --ray`: the same app on Ray Serve with two replicas, on the suite's local 2-CPU Ray."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from steering.serve.app import ServeConfig
from steering.serve.engine import ServeLimits
from steering.serve.registry import VectorRegistry
from tests.serve.conftest import MAX_TOKENS, PROMPTS, reference

pytest.importorskip("ray.serve")
pytestmark = pytest.mark.slow


#: set in the fresh interpreter that runs the Ray Serve test
ISOLATED = "WORKBENCH_SERVE_RAY_ISOLATED"


@pytest.mark.skipif(os.environ.get(ISOLATED) == "1", reason="this is the isolated run")
def test_ray_serve_in_a_fresh_interpreter() -> None:
    """Run the Ray Serve test in a fresh Python: importing nnsight (the capture tests do) adds `save` to
    `object` in this process, and Ray Serve replicas started from it then fail to define anyio's typed-attribute
    classes (`TypeError: Attribute 'save' is missing its type annotation`). `workbench serve --ray` never
    imports nnsight, so users do not meet this; the suite must not depend on test order to show it."""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         f"{Path(__file__).relative_to(root)}::test_two_replicas_answer_like_the_local_server"],
        cwd=root, env={**os.environ, ISOLATED: "1"}, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout[-4000:] + result.stderr[-2000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(os.environ.get(ISOLATED) != "1", reason="runs in a fresh interpreter (the test above)")
def test_two_replicas_answer_like_the_local_server(ray_cluster, tiny_model, tiny_model_dir: Path,  # type: ignore[no-untyped-def]
                                                   vectors_dir: Path) -> None:
    import openai
    from ray import serve

    from steering.serve.ray_app import APP_NAME, ray_serving

    registry = VectorRegistry.load(vectors_dir, tiny_model)
    asks = [(p, s) for p in PROMPTS[:3] for s in (None, {"vector": "up", "strength": 3.0}, {"vector": "down"})]
    expected = [reference(tiny_model, p, s, registry) for p, s in asks]
    config = ServeConfig(str(tiny_model_dir), vectors_dir, ServeLimits(max_tokens=32))
    with ray_serving(config, "127.0.0.1", _free_port(), replicas=2, num_cpus=0.5) as url:
        status = serve.status().applications[APP_NAME]
        replicas = next(iter(status.deployments.values())).replica_states
        assert replicas.get("RUNNING") == 2
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)

        def ask(job: tuple[str, dict | None]) -> str:
            prompt, steering = job
            reply = client.chat.completions.create(
                model=str(tiny_model_dir), max_tokens=MAX_TOKENS, temperature=0,
                messages=[{"role": "user", "content": prompt}],
                extra_body={"steering": steering} if steering else None)
            return reply.choices[0].message.content

        with ThreadPoolExecutor(len(asks)) as pool:
            answers = list(pool.map(ask, asks))
        with pytest.raises(openai.NotFoundError):
            ask((PROMPTS[0], {"vector": "nope"}))
    assert answers == expected
    assert answers[1] != answers[0]  # steering acts through Ray Serve too
