"""The registry of capture backends: name -> a factory that imports its engine on first use.

Example:
    >>> sorted(BACKENDS)
    ['hooks', 'nnsight', 'nnsight-remote', 'tl']
"""

from __future__ import annotations

from collections.abc import Callable

from interp.capture.backends.base import Backend


def _hooks() -> Backend:
    from interp.capture.backends.hooks import HooksBackend

    return HooksBackend()


def _nnsight() -> Backend:
    from interp.capture.backends.nnsight_backend import NnsightBackend

    return NnsightBackend()


def _nnsight_remote() -> Backend:
    from interp.capture.backends.remote import RemoteNnsightBackend

    return RemoteNnsightBackend()


def _tl() -> Backend:
    from interp.capture.backends.tl_backend import TransformerLensBackend

    return TransformerLensBackend()


BACKENDS: dict[str, Callable[[], Backend]] = {
    "hooks": _hooks, "nnsight": _nnsight, "tl": _tl, "nnsight-remote": _nnsight_remote,
}


def make_backend(name: str) -> Backend:
    """A fresh backend by name.

    Args:
        name: one of BACKENDS.

    Raises:
        ValueError: an unknown name.

    Example:
        >>> make_backend("hooks").name
        'hooks'
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose from {', '.join(BACKENDS)}")
    return BACKENDS[name]()
