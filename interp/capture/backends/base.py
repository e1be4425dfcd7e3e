"""The backend protocol and the batch every backend reads (the registry is `registry`)."""

from __future__ import annotations

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
