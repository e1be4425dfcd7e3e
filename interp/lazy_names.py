"""Public names a package loads on first use: its `__init__` lists them without importing heavy modules.

Example:
    >>> __getattr__ = lazy_names("probes", {"save_heatmap": "probes.plots"})
    >>> __getattr__("save_heatmap").__name__
    'save_heatmap'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package` that imports each name of `where` from its module on first use.

    Args:
        package: the package's name, for the error message.
        where: public name -> the module that defines it.
    """

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
