"""An OpenAI-compatible server with per-request steering vectors and gates (`workbench serve`).

| module | holds |
| --- | --- |
| `app` | the FastAPI app: endpoints, streaming, errors, `/health`, `/metrics` |
| `engine` | `Engine`: the model, vectors, limits and request validation (every backend shares it) |
| `scheduler` | continuous batching of requests on a backend, on one worker thread |
| `backend` | `DecodeBackend`: the step-level interface a decoding engine implements |
| `torch_backend`, `batch_cache` | the torch engine: per-row steering on the HF model, a batched KV cache |
| `llamacpp_backend` | the llama.cpp engine (`--engine llamacpp`): the GGUF in llama.cpp, a control vector per row |
| `telemetry` | Prometheus metrics and the per-request log line |
| `registry`, `schema` | the vectors and gates served; the request body and OpenAI-style errors |
| `local`, `ray_app` | run the app in-process (uvicorn thread) or on Ray Serve |
"""

from steering.serve.app import ServeConfig, build_app, create_app
from steering.serve.backend import DecodeBackend, RowRequest, Token
from steering.serve.engine import Engine, ServeLimits
from steering.serve.registry import RegistryError, VectorRegistry
from steering.serve.scheduler import Scheduler

__all__ = ["DecodeBackend", "Engine", "RegistryError", "RowRequest", "Scheduler", "ServeConfig", "ServeLimits",
           "Token", "VectorRegistry", "build_app", "create_app"]
