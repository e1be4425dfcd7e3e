"""The same steering interventions through nnsight and through the TransformerLens bridge.

Both run one full forward (no KV cache) and return the logits; they apply the
`SteeringPlan` of `steering.apply.interventions` for a `SteerSpec`, exactly as
`steering.steer` does with forward hooks, so a parity test can compare the
three. Gates are not supported here (use `steer`).

Example:
    >>> spec = SteerSpec(vector, (2,))  # doctest: +SKIP
    >>> logits = steered_logits_nnsight(model, spec, 4.0, batch["input_ids"], batch["attention_mask"])  # doctest: +SKIP
    >>> bridge = boot_bridge(model)  # doctest: +SKIP
    >>> same = steered_logits_tl(model, bridge, spec, 4.0, batch["input_ids"], batch["attention_mask"])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from interp.capture.backends.nnsight_backend import NnsightBackend, _envoy_at
from interp.models.hooks import hook_point
from steering.apply.interventions import Lengths, SteeringPlan, Strength
from steering.apply.spec import SteerSpec

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


def _plan(model: ChatModel, spec: SteerSpec, strength: Strength, prompt_lengths: Lengths | None) -> SteeringPlan:
    if spec.gate is not None:
        raise ValueError("the nnsight and TransformerLens twins do not apply gates: use steering.steer")
    return spec.plan(model, strength, prompt_lengths)


def steered_logits_nnsight(
    model: ChatModel,
    spec: SteerSpec,
    strength: Strength,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    prompt_lengths: Lengths | None = None,
    wrapped: Any | None = None,
) -> torch.Tensor:
    """Logits `[batch, pos, vocab]` of a steered forward traced with nnsight (editing `.output`/`.input`).

    Args:
        model: the model; nnsight wraps `model.hf` without copying it.
        spec: the steering (no gate).
        strength, prompt_lengths: as in `steering.steer` (real prompt tokens, no offset rule).
        input_ids: `[batch, pos]` token ids.
        attention_mask: `[batch, pos]`, any padding side.
        wrapped: an nnsight `TransformersModel` over `model.hf` to reuse (built when None).

    Example:
        >>> steered_logits_nnsight(model, SteerSpec(v, (2,), mode="ablate"), 2.0, ids, mask).shape  # doctest: +SKIP
        torch.Size([2, 10, 400])
    """
    plan = _plan(model, spec, strength, prompt_lengths)
    batch, n = input_ids.shape
    mask = plan.position_mask(batch, n, 0, attention_mask)  # [batch, pos] or None
    nn_model = wrapped if wrapped is not None else NnsightBackend().wrap(model)
    with torch.inference_mode():
        with nn_model.trace(input_ids, attention_mask=attention_mask, use_cache=False):
            for site in plan.sites:
                point = hook_point(model, site)
                envoy = _envoy_at(nn_model, point.path)
                if point.reads == "output":
                    out = envoy.output
                    if isinstance(out, tuple):  # attention returns (hidden, weights)
                        envoy.output = (plan.apply(site, out[0], mask), *out[1:])
                    else:
                        envoy.output = plan.apply(site, out, mask)
                else:
                    envoy.input = plan.apply(site, envoy.input, mask)
            logits = nn_model.output.logits.save()
    return torch.as_tensor(logits)


def steered_logits_tl(
    model: ChatModel,
    bridge: Any,
    spec: SteerSpec,
    strength: Strength,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    prompt_lengths: Lengths | None = None,
) -> torch.Tensor:
    """Logits `[batch, pos, vocab]` of a steered forward on a TransformerLens bridge (`run_with_hooks`).

    Args:
        model: the model the vector and sites refer to (validation and plan).
        bridge: a `TransformerBridge` over a copy of `model.hf`
            (`interp.capture.backends.tl_backend.boot_bridge(model)`).
        spec: the steering (no gate).
        strength, prompt_lengths: as in `steering.steer` (real prompt tokens, no offset rule).
        input_ids: `[batch, pos]` token ids.
        attention_mask: `[batch, pos]`, any padding side.

    Example:
        >>> steered_logits_tl(model, boot_bridge(model), SteerSpec(v, (2,)), 2.0, ids, mask).shape  # doctest: +SKIP
        torch.Size([2, 10, 400])
    """
    plan = _plan(model, spec, strength, prompt_lengths)
    batch, n = input_ids.shape
    mask = plan.position_mask(batch, n, 0, attention_mask)  # [batch, pos] or None

    def make_hook(site: Any) -> Any:
        def hook(h: torch.Tensor, hook: Any) -> torch.Tensor:
            return plan.apply(site, h, mask)  # [batch, pos, d_model]

        return hook

    with torch.inference_mode():
        logits = bridge.run_with_hooks(
            input_ids, attention_mask=attention_mask, fwd_hooks=[(site.name, make_hook(site)) for site in plan.sites]
        )
    return torch.as_tensor(logits)
