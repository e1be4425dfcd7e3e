"""Where each site lives on an HF model, and forward hooks that read it.

Every site is a module's output (`resid_post`, `attn_out`, `mlp_out`) or a
module's input (`resid_pre`: the block's input; `attn.hook_z`: o_proj's
input). This is the single place that maps TransformerLens names onto HF
modules; the capture backends and the steering hooks both use it.

Example:
    >>> point = hook_point(model, parse_site("blocks.3.hook_resid_post", model.n_layers))  # doctest: +SKIP
    >>> point.reads  # doctest: +SKIP
    'output'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from interp.models.architectures import module_at
from interp.sites import Site

if TYPE_CHECKING:
    from interp.models.loading import ChatModel

# execution order of the sites inside one block
KIND_ORDER = {"hook_resid_pre": 0, "attn.hook_z": 1, "hook_attn_out": 2, "hook_mlp_out": 3, "hook_resid_post": 4}


@dataclass(frozen=True)
class HookPoint:
    module: nn.Module
    reads: str  # "output" or "input"
    path: str  # dotted path relative to the HF model, e.g. "model.layers.3.self_attn"


def hook_point(model: ChatModel, site: Site) -> HookPoint:
    """The module and side (input/output) that carries `site`."""
    layout = model.layout
    block_path = f"{layout.layers}.{site.layer}"
    relative = {
        "hook_resid_pre": ("", "input"),
        "hook_resid_post": ("", "output"),
        "hook_attn_out": (layout.attn, "output"),
        "hook_mlp_out": (layout.mlp, "output"),
        "attn.hook_z": (layout.o_proj, "input"),
    }[site.kind]
    path = block_path + (f".{relative[0]}" if relative[0] else "")
    return HookPoint(module_at(model.hf, path), relative[1], path)


def execution_order(sites: list[Site]) -> list[Site]:
    return sorted(sites, key=lambda s: (s.layer, KIND_ORDER[s.kind]))


def first_tensor(value: Any) -> torch.Tensor:
    """The hidden-state tensor of a module's output or input (tuples hold it first)."""
    return value[0] if isinstance(value, tuple) else value


def replace_first(value: Any, tensor: torch.Tensor) -> Any:
    return (tensor, *value[1:]) if isinstance(value, tuple) else tensor


TensorFn = Callable[[torch.Tensor], torch.Tensor | None]


@contextmanager
def hooks_on(
    model: ChatModel, fns: dict[Site, TensorFn], before_forward: Callable[..., None] | None = None
) -> Iterator[None]:
    """Install `fn(tensor)` at each site for the duration of the context.

    `fn` sees the site's tensor `[batch, pos, d]`; returning a tensor replaces
    it (steering), returning None leaves it (reading). `before_forward(module, args, kwargs)`,
    if given, runs before every forward of the decoder stack (a pre-hook with kwargs: the
    call's input ids, mask and KV cache, read by `steering.apply.interventions.forward_call`).
    Hooks are removed in `finally`, also when the body raises.
    """
    handles: list[torch.utils.hooks.RemovableHandle] = []

    def output_hook(fn: TensorFn) -> Callable[..., Any]:
        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            new = fn(first_tensor(output))
            return None if new is None else replace_first(output, new)

        return hook

    def input_hook(fn: TensorFn) -> Callable[..., Any]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if args:
                new = fn(args[0])
                return None if new is None else ((new, *args[1:]), kwargs)
            new = fn(kwargs["hidden_states"])
            return None if new is None else (args, {**kwargs, "hidden_states": new})

        return hook

    try:
        if before_forward is not None:
            stack = module_at(model.hf, model.layout.layers.rsplit(".", 1)[0])
            handles.append(stack.register_forward_pre_hook(before_forward, with_kwargs=True))
        for site, fn in fns.items():
            point = hook_point(model, site)
            if point.reads == "output":
                handles.append(point.module.register_forward_hook(output_hook(fn)))
            else:
                handles.append(point.module.register_forward_pre_hook(input_hook(fn), with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()
