"""Training a low-rank edit (`steering.artifacts.lowrank_edit.LowRankEdit`) with the learned vector's loop and objective.

The parametrisation (`LowRankParams`) of `h <- h + R^T (W h + b - R h)` at each steered layer:

- `R` `[r, d]` with orthonormal rows is the Q factor of a free matrix (`rotation_of`: `R = Q^T` of
  `basis^T = Q U`, signs fixed so that `U`'s diagonal is positive, which makes the map smooth and unique).
  A QR of a plain tensor rather than `torch.nn.utils.parametrizations.orthogonal`: that one needs an
  `nn.Module` and keeps its own cached state, while here every trainable is a plain tensor that the one
  loop's Adam-per-tensor, checkpoints and resume handle like the vector (and Adam's steps on the free matrix
  are unconstrained). The QR of an `[d, r]` matrix costs O(d r^2): nothing beside a forward pass.
- start: `basis` random (seeded by the training seed and the layer), `W = R`, `b = 0`: exactly no edit, so
  the first step starts from the unsteered model, as the vector does from zero.
- learning rates: `basis` and `W` at `lr / sqrt(d)` per entry (their rows have norm about 1: each step moves a
  row by about `lr`); `b` (residual units) at `lr * mean residual norm / sqrt(r)` (each step moves `R^T b`
  by about `lr` times the residual norm, as the vector's step does).
- norm cap: after each step, `W - R` and `b` are shrunk together so that the bound
  `|edit| <= ||W - R||_2 * (mean residual norm) + |b|` stays within `max_norm` times the mean residual norm.
- measured: the mean norm of the edit on the validation groups' steered tokens at the best step, saved as the
  edit's `edit_norms` (the sweep's x axis).

Example:
    >>> edit = learn_lowrank(model, PairSplit(0, 0.3), LearnConfig(layers=(12,)), rank=2)  # doctest: +SKIP
    >>> edit.method, edit.rank
    ('lowrank:correct%2', 2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from steering.apply.lowrank_steer import EditNorms, EditTensors, edit_context
from steering.apply.spec import steer_lengths
from steering.artifacts.lowrank_edit import LayerEdit, LowRankEdit
from steering.artifacts.probe_gate import ProbeGate
from steering.evaluation.splits import PairSplit
from steering.methods.learned import SITE_KIND, LearnConfig, train_steering
from steering.methods.learned_params import Parametrisation, RowContextFn, RowScale

if TYPE_CHECKING:
    from interp.models.loading import ChatModel
    from steering.methods.learned_objective import LearnData

DEFAULT_RANK = 2


def rotation_of(basis: torch.Tensor) -> torch.Tensor:
    """Orthonormal rows `[r, d]` from a free matrix `[r, d]` of full rank (differentiable; module docstring).

    Example:
        >>> R = rotation_of(torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
        >>> torch.allclose(R @ R.T, torch.eye(2)), R[0].tolist()
        (True, [1.0, 0.0, 0.0])
    """
    q, u = torch.linalg.qr(basis.T)  # [d, r], [r, r]
    signs = torch.sign(torch.diagonal(u))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return (q * signs).T


class LowRankParams(Parametrisation):
    """`h + R^T (W h + b - R h)` per layer, R the Q of a free matrix (module docstring)."""

    def __init__(self, layers: Sequence[int], rank: int) -> None:
        super().__init__(layers)
        if rank < 1:
            raise ValueError(f"a low-rank edit needs rank >= 1 (rank {rank} edits nothing)")
        self.rank = int(rank)
        self.basis: dict[int, torch.Tensor] = {}
        self.weight: dict[int, torch.Tensor] = {}
        self.bias: dict[int, torch.Tensor] = {}
        self.resid: dict[int, float] = {}
        self.max_norm = 0.0
        self.edit_norms = EditNorms()

    def start(self, model: ChatModel, data: LearnData, resid: dict[int, float], config: LearnConfig) -> None:
        d = model.d_model
        if self.rank > d:
            raise ValueError(f"rank {self.rank} exceeds the residual width {d}")
        device = next(model.hf.parameters()).device
        for layer in self.layers:
            generator = torch.Generator().manual_seed(int(config.seed) * 1009 + layer)
            basis = (torch.randn(self.rank, d, generator=generator) / float(np.sqrt(d))).to(device)
            self.basis[layer] = basis.requires_grad_()
            self.weight[layer] = rotation_of(basis).detach().clone().requires_grad_()  # W = R: exactly no edit
            self.bias[layer] = torch.zeros(self.rank, device=device, requires_grad=True)
            self.tensors.update({f"basis.{layer}": self.basis[layer], f"weight.{layer}": self.weight[layer],
                                 f"bias.{layer}": self.bias[layer]})
            self.lrs.update({f"basis.{layer}": config.lr / float(np.sqrt(d)),
                             f"weight.{layer}": config.lr / float(np.sqrt(d)),
                             f"bias.{layer}": config.lr * resid[layer] / float(np.sqrt(self.rank))})
        self.resid, self.max_norm = dict(resid), config.max_norm

    def edits(self) -> dict[int, EditTensors]:
        """The current R, W, b of each layer (R recomputed from its free matrix, in the autograd graph)."""
        return {layer: EditTensors(rotation_of(self.basis[layer]), self.weight[layer], self.bias[layer])
                for layer in self.layers}

    def context(self, model: ChatModel, positions: str, tokens: Sequence[int], row_scale: RowScale) -> RowContextFn:
        edits = self.edits()
        norms = self.edit_norms

        @contextmanager
        def context(rows: list[int]) -> Iterator[object]:
            strength: float | list[float] | torch.Tensor = 1.0
            if isinstance(row_scale, torch.Tensor):
                strength = row_scale[torch.as_tensor(rows, dtype=torch.long)]
            elif row_scale is not None:
                strength = [float(row_scale[i]) for i in rows]
            with edit_context(model, edits, strength, positions, steer_lengths([tokens[i] for i in rows]), norms):
                yield None

        return context

    def bounds(self) -> dict[int, float]:
        """Per layer, `||W - R||_2 * mean residual norm + |b|`: an upper bound of the edit's norm at a token of that
        norm."""
        out = {}
        with torch.no_grad():
            for layer, e in self.edits().items():
                spectral = float(torch.linalg.matrix_norm(e.weight - e.rotation, ord=2))
                out[layer] = spectral * self.resid[layer] + float(e.bias.norm())
        return out

    def project(self) -> None:
        with torch.no_grad():
            for layer, bound in self.bounds().items():
                cap = self.max_norm * self.resid[layer]
                if bound > cap:
                    shrink = cap / bound
                    rotation = rotation_of(self.basis[layer])
                    self.weight[layer].copy_(rotation + shrink * (self.weight[layer] - rotation))
                    self.bias[layer].mul_(shrink)

    def norms(self) -> dict[str, float]:
        return {str(layer): bound for layer, bound in self.bounds().items()}

    def measured(self) -> dict[str, Any]:
        means = self.edit_norms.means()
        return {"edit_norm": {str(layer): v for layer, v in means.items()}} if means else {}

    def fingerprint(self) -> Any:
        return {"lowrank": {"rank": self.rank, "rotation": "qr"}}


def learn_lowrank(
    model: ChatModel, split: PairSplit, config: LearnConfig, rank: int = DEFAULT_RANK,
    folder: str | Path | None = None, progress: Callable[[int, dict[str, float]], None] | None = None,
    stop_after: int | None = None, gate: ProbeGate | None = None,
) -> LowRankEdit:
    """Train a rank-`rank` edit at `config.layers` on the TRAIN side of `split` (resumable from `folder`).

    Args:
        model: the model (its parameters are not changed).
        split: the pair split; only train-side pairs are read.
        config: the learned vector's objective and optimisation settings (`steering.methods.learned.LearnConfig`).
        rank: rows of R (>= 1).
        folder: where the checkpoint goes (None: no checkpoint, no resume).
        progress: called after every step with (step, {"loss": ..., ...}).
        stop_after: stop (checkpointed) after this many steps, as if interrupted: for tests.
        gate: steer only the training rows this gate fires on (as `learn_vector`).

    Returns:
        The best edit on the validation groups (strength 1 = as trained), its mean edit norms and provenance.
    """
    trained = train_steering(model, split, config, LowRankParams(config.layers, rank), folder, progress,
                             stop_after, gate)
    best = trained.best
    edits = {layer: LayerEdit(rotation_of(best[f"basis.{layer}"]).numpy(), best[f"weight.{layer}"].numpy(),
                              best[f"bias.{layer}"].numpy()) for layer in config.layers}
    measured = trained.measured.get("edit_norm", {})
    meta = {**trained.meta,
            "lowrank": {"rank": rank, "rotation": "R = Q^T of a QR of a free matrix", "start": "W = R, b = 0"},
            "scale": "strength 1 applies the trained edit; edit_norms: its mean norm on the validation groups' "
                     "steered tokens at the best step"}
    return LowRankEdit(edits, method=f"lowrank:{config.target}%{rank}", d_model=model.d_model, site_kind=SITE_KIND,
                       model_hash=model.weights_hash, arch=model.arch, dataset_hash=trained.meta["train_pairs_hash"],
                       resid_norms=trained.resid,
                       edit_norms={layer: float(measured.get(str(layer), float("nan"))) for layer in config.layers},
                       positions=config.positions, meta=meta)
