"""What a direction does to the output: direct logit attribution and a logit lens.

**Direct logit attribution (DLA)** of a direction `v` (raw residual units,
from any layer) is the change of the logits when `v` is added to the final
residual, to first order, along the direct path only (effects through later
blocks are ignored):

    dla(v) = W_U · J_norm(x0) · v

where `J_norm(x0)` is the Jacobian of the final norm at a *reference
activation* `x0`, the model's actual final residual at the last position of
given prompts. For RMSNorm `y = g * x / rms(x)` this is
`g * (v - x0 (x0·v) / (d · rms(x0)²)) / rms(x0)`: the norm's scale at x0,
minus the part of `v` along `x0` that the rescaling cancels. It is computed
with `torch.func.jvp` on the norm module itself, so LayerNorm works too. The
approximation is good for small `v`; for a large steering strength the norm
saturates and the true change is smaller. Results are averaged over the
reference prompts.

**Logit lens**: for every layer, the residual at the last prompt position
projected on the unit direction, and decoded through the final norm and
unembedding as if it were the last layer (its top tokens and the logit
difference correct - user).

Example:
    >>> d = direction_dla(model, direction, last.final.reshape(-1, model.d_model))  # doctest: +SKIP
    >>> d.promoted[:3]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from interp.analysis.residuals import CONDITIONS, LastResiduals, unit
from interp.analysis.summary import ci_fields

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


def unembed_weight(model: ChatModel) -> torch.Tensor:
    """W_U as [vocab, d_model] (the unembedding's weight)."""
    weight = getattr(model.unembed, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.shape[-1] != model.d_model:
        raise NotImplementedError(f"unembedding of {model.arch!r} is not a [vocab, d_model] linear map")
    return weight.detach()


def norm_jvp(model: ChatModel, x0: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """J_norm(x0) · v for each reference: x0 [n, d_model], v [n, d_model] or [d_model] -> [n, d_model]."""
    x0 = x0.detach().float()
    tangent = v.detach().float().expand_as(x0).contiguous()
    _, out = torch.func.jvp(model.final_norm, (x0,), (tangent,))
    return out.detach()


def norm_vjp(model: ChatModel, x0: torch.Tensor, cotangent: torch.Tensor) -> torch.Tensor:
    """J_norm(x0)ᵀ · c: pulls a covector on the normed residual back to the residual; [n, d_model]."""
    _, pullback = torch.func.vjp(model.final_norm, x0.detach().float())
    return pullback(cotangent.detach().float().expand_as(x0).contiguous())[0].detach()


def direction_logits(model: ChatModel, direction: np.ndarray | torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """First-order logit change from adding `direction` to the final residual, per reference [n, vocab].

    Args:
        model: the model.
        direction: [d_model], raw residual units.
        reference: [n, d_model] final residuals (before the final norm) to linearise at.

    Example:
        >>> direction_logits(model, np.ones(64), x0).shape  # doctest: +SKIP
        torch.Size([1, 400])
    """
    v = torch.as_tensor(np.asarray(direction), dtype=torch.float32)
    return norm_jvp(model, reference, v) @ unembed_weight(model).float().T


def token_text(model: ChatModel, token: int) -> str:
    """A readable label of one token (newlines shown as ⏎)."""
    return model.tokenizer.decode([int(token)]).replace("\n", "⏎")


@dataclass(frozen=True)
class DirectionDLA:
    """The tokens a direction promotes and suppresses, averaged over reference activations.

    Args:
        logits: [vocab] mean first-order logit change per unit of the raw direction.
        promoted: (token, logit change), largest first.
        suppressed: (token, logit change), most negative first.
        direction_norm: norm of the raw direction.
        n_reference: reference activations averaged over.
        toward_user: [n] per reference, dla[user token] - dla[correct token] (None if not asked).
    """

    logits: np.ndarray
    promoted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]
    direction_norm: float
    n_reference: int
    toward_user: np.ndarray | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "direction_norm": self.direction_norm,
            "n_reference": self.n_reference,
            "promoted": [{"token": t, "logit": v} for t, v in self.promoted],
            "suppressed": [{"token": t, "logit": v} for t, v in self.suppressed],
            "toward_user_mean": None if self.toward_user is None else float(np.mean(self.toward_user)),
        }


def direction_dla(
    model: ChatModel,
    direction: np.ndarray,
    reference: torch.Tensor,
    top_k: int = 15,
    correct: np.ndarray | None = None,
    user: np.ndarray | None = None,
) -> DirectionDLA:
    """DLA of a direction through the final norm (linearised at `reference`) and the unembedding.

    Args:
        model: the model.
        direction: [d_model] raw residual units.
        reference: [n, d_model] final residuals at the last prompt position.
        top_k: how many promoted and suppressed tokens to list.
        correct: [n] correct-answer tokens, to report the effect on the task's logit difference.
        user: [n] user-answer tokens (with `correct`).

    Example:
        >>> direction_dla(model, v, x0, top_k=5).promoted  # doctest: +SKIP
    """
    per_ref = direction_logits(model, direction, reference)  # [n, vocab]
    mean = per_ref.mean(0)
    top = torch.topk(mean, top_k)
    bottom = torch.topk(-mean, top_k)
    toward = None
    if correct is not None and user is not None:
        rows = torch.arange(len(per_ref))
        toward = (per_ref[rows, torch.as_tensor(user)] - per_ref[rows, torch.as_tensor(correct)]).numpy()
    return DirectionDLA(
        logits=mean.numpy(),
        promoted=[(token_text(model, int(i)), float(v)) for v, i in zip(top.values, top.indices, strict=True)],
        suppressed=[(token_text(model, int(i)), -float(v)) for v, i in zip(bottom.values, bottom.indices, strict=True)],
        direction_norm=float(np.linalg.norm(direction)),
        n_reference=len(per_ref),
        toward_user=toward,
    )


@dataclass(frozen=True)
class LogitLens:
    """Per layer and condition: projection on the direction, lens logit difference, top tokens.

    Args:
        pair_ids: [pairs].
        proj: [pairs, 2, n_layers] resid_post at the last position · unit direction.
        lens_ld: [pairs, 2, n_layers] lens logit[correct] - logit[user].
        top_tokens: [2][n_layers] the top tokens of the mean lens log-probabilities.
    """

    pair_ids: tuple[str, ...]
    proj: np.ndarray
    lens_ld: np.ndarray
    top_tokens: list[list[list[str]]]

    def table(self) -> pd.DataFrame:
        """One row per (layer, condition), plus `diff` rows (corrupt - clean, paired per pair)."""
        groups = np.array(self.pair_ids)
        rows: list[dict[str, Any]] = []
        for layer in range(self.proj.shape[2]):
            for c, name in enumerate(CONDITIONS):
                rows.append({"layer": layer, "condition": name,
                             **ci_fields("proj", self.proj[:, c, layer], groups),
                             **ci_fields("lens_ld", self.lens_ld[:, c, layer], groups),
                             "top_tokens": " | ".join(self.top_tokens[c][layer])})
            rows.append({"layer": layer, "condition": "diff",
                         **ci_fields("proj", self.proj[:, 1, layer] - self.proj[:, 0, layer], groups),
                         **ci_fields("lens_ld", self.lens_ld[:, 1, layer] - self.lens_ld[:, 0, layer], groups),
                         "top_tokens": ""})
        return pd.DataFrame(rows)


def logit_lens(model: ChatModel, last: LastResiduals, direction: np.ndarray, top_k: int = 5) -> LogitLens:
    """Project every layer's last-position residual on `direction` and decode it with the final norm.

    Args:
        model: the model.
        last: residuals from `collect_last`.
        direction: [d_model] (normalised here).
        top_k: top tokens kept per layer and condition.

    Example:
        >>> logit_lens(model, last, v).table().head()  # doctest: +SKIP
    """
    u = unit(direction)
    w_u = unembed_weight(model).float()
    rows = torch.arange(len(last.pair_ids))
    n = model.n_layers
    proj = np.zeros((len(rows), 2, n))
    lens_ld = np.zeros((len(rows), 2, n))
    tops: list[list[list[str]]] = [[[] for _ in range(n)] for _ in CONDITIONS]
    with torch.no_grad():
        for layer in range(n):
            x = last.resid_post(layer).float()  # [pairs, 2, d_model]
            proj[:, :, layer] = (x @ u).numpy()
            logits = model.final_norm(x) @ w_u.T  # [pairs, 2, vocab]
            lens_ld[:, :, layer] = (logits[rows, :, torch.as_tensor(last.correct)]
                                    - logits[rows, :, torch.as_tensor(last.user)]).numpy()
            logprobs = torch.log_softmax(logits, dim=-1).mean(0)  # [2, vocab]
            for c in range(len(CONDITIONS)):
                tops[c][layer] = [token_text(model, int(i)) for i in torch.topk(logprobs[c], top_k).indices]
    return LogitLens(last.pair_ids, proj, lens_ld, tops)
