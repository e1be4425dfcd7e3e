"""The backend protocol and its registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from interp.sites import Site

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # [batch, pos]
    attention_mask: torch.Tensor  # [batch, pos]
    position_ids: torch.Tensor  # [batch, pos]


class Backend(Protocol):
    name: str

    def activations(self, model: ChatModel, batch: Batch, sites: list[Site]) -> dict[Site, torch.Tensor]:
        """Each site's tensor `[batch, pos, d]` (`attn.hook_z` flattened to heads * d_head)."""
        ...


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
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose from {', '.join(BACKENDS)}")
    return BACKENDS[name]()
