"""Where the workbench caches what it builds once per machine: dequantised models, the llama.cpp library.

Kept free of heavy imports, so a build step can ask where its cache lies without loading torch.

Example:
    >>> import os
    >>> os.environ["WORKBENCH_CACHE"] = "/tmp/wb-cache"
    >>> str(cache_dir())
    '/tmp/wb-cache'
    >>> del os.environ["WORKBENCH_CACHE"]
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The workbench's cache folder (`$WORKBENCH_CACHE`, default `~/.cache/workbench`)."""
    return Path(os.environ.get("WORKBENCH_CACHE", Path.home() / ".cache" / "workbench"))
