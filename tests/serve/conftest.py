"""Fixtures of the server tests: a folder of native exports and gates for the tiny model, and a running server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI

from interp.tasks.example import Turn
from steering.export.native import export_native
from steering.generation import generate_texts
from steering.probe_gate import ProbeGate
from steering.serve.app import create_app
from steering.serve.engine import Engine, ServeLimits
from steering.serve.local import serving
from steering.serve.registry import VectorRegistry
from steering.spec import SteerSpec
from tests.steering.builders import random_vector

MODEL_ID = "tiny"
MAX_TOKENS = 8
PROMPTS = ["What is the capital of France?", "I think the answer is London, but I'm really not sure.",
           "Please rate the following poem", "two plus two is four; seven times six is",
           "My textbook says the answer is Berlin. Are you sure?"]


def gate_for(model, threshold: float) -> ProbeGate:  # type: ignore[no-untyped-def]
    u = np.zeros(model.d_model, dtype=np.float32)
    u[0] = 1.0
    return ProbeGate(u, bias=0.0, threshold=threshold, layer=0, per="last_prompt",
                     meta={"model_hash": model.weights_hash})


@pytest.fixture(scope="module")
def vectors_dir(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("served-vectors")
    export_native(random_vector(tiny_model, layers=(0, 1, 2, 3), seed=1, scale=4.0), folder / "up.safetensors",
                  "add", strength=3.0, measured={"gain": 0.1, "kl_all": 0.01})
    export_native(random_vector(tiny_model, layers=(1, 2), seed=2, scale=4.0, positions="generated"),
                  folder / "down.safetensors", "add", strength=-3.0)
    gate_for(tiny_model, -np.inf).save(folder / "always.safetensors")
    gate_for(tiny_model, np.inf).save(folder / "never.safetensors")
    return folder


@pytest.fixture(scope="module")
def engine(tiny_model, vectors_dir: Path) -> Engine:  # type: ignore[no-untyped-def]
    limits = ServeLimits(max_tokens=256, max_batch=16, max_queue=64)
    return Engine(tiny_model, VectorRegistry.load(vectors_dir, tiny_model), limits, name=MODEL_ID)


@pytest.fixture(scope="module")
def app(engine: Engine) -> FastAPI:
    return create_app(engine)


@pytest.fixture(scope="module")
def server(app: FastAPI) -> Iterator[str]:
    """The base URL of the app on 127.0.0.1, a free port; shut down after the module."""
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str):  # type: ignore[no-untyped-def]
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=300)


def reference(model, prompt: str, steering: dict | None, registry: VectorRegistry,  # type: ignore[no-untyped-def]
              max_tokens: int = MAX_TOKENS) -> str:
    """The answer of `prompt` decoded alone through `steer()` (SteerSpec), the `workbench steer` path."""
    turns = [(Turn("user", prompt),)]
    if steering is None:
        return generate_texts(model, turns, max_tokens)[0]
    served = registry.vectors[steering["vector"]]
    gate = registry.gates[steering["gate"]].gate if steering.get("gate") else None
    layers = tuple(steering.get("layers") or served.info.layers)
    spec = SteerSpec(served.vector, layers, steering.get("positions") or served.info.positions, served.info.mode,
                     gate=gate)
    strength = steering.get("strength", served.info.strength)
    return generate_texts(model, turns, max_tokens, spec, [float(strength)])[0]
