"""The steering package's public names: `from steering import steer` is the function, every lazy name resolves,
and reading a vector file does not import torch."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

GROUPS = ("steering", "steering.apply", "steering.artifacts", "steering.evaluation")


def test_steer_is_the_context_manager_not_a_module() -> None:
    import steering.apply.steer_hooks  # importing the module must not shadow the package's name
    from steering import steer

    assert callable(steer) and steer.__name__ == "steer"
    assert steer is steering.apply.steer_hooks.steer
    from steering.apply import steer as again

    assert again is steer


@pytest.mark.parametrize("package", GROUPS)
def test_every_public_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module._LAZY) == sorted(module.__all__)
    for name in module.__all__:
        value = getattr(module, name)
        assert getattr(value, "__name__", name) == name or not callable(value)


def test_reading_a_vector_does_not_import_torch() -> None:
    code = ("import sys; from steering import SteeringVector, read_vector; import steering.artifacts.vector_file; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
