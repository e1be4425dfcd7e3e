"""An OpenAI-compatible server with per-request steering vectors and gates (`workbench serve`)."""

from steering.serve.app import ServeConfig, build_app, create_app
from steering.serve.engine import Engine, ServeLimits
from steering.serve.registry import RegistryError, VectorRegistry

__all__ = ["Engine", "RegistryError", "ServeConfig", "ServeLimits", "VectorRegistry", "build_app", "create_app"]
