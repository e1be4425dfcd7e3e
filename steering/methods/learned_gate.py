"""A learned vector behind a gate learned with it: the gate direction is trained, not only a probe's.

The gated family (`steering.methods.families.gated`) trains through the sweep's probe gate, held fixed. Here the
gate learns too (`SelfGatedVector`):

- in training, a soft gate `sigmoid((h . g + c) / T)` multiplies each row's steering, with `h` the unsteered
  residual at the gate's site (the first steered layer's `hook_resid_post`) at the last prompt token, the token
  "generated" starts at. Nothing before that site is steered, so `h` is read once (`gate_training.gate_features`)
  and every step only recomputes the gate's values, which carry a gradient into `g` and `c`;
- `g`, `c` start from the probe gate (its logit: `g = scale * u`, `c = bias`) and learn from the behaviour
  objective plus `bce` times the binary cross-entropy of the soft gate against the user-opinion labels
  (`probes.labels.user_opinion_labels`: the training groups' conditions say whether the user states an opinion)
  on the minibatch's rows and on `n_general` train-side general requests (no opinion: `interp.tasks.general`);
- validation (early stopping) runs with the hard gate the cells use, `h . g + c > 0`; at test time the learned
  gate is a `ProbeGate` (direction `g / |g|`, scale `|g|`, bias `c`, threshold 0, per="last_prompt"), saved in the
  vector's meta (`LEARNED_GATE`) and used by the sweep to gate the family's cells (`Family.cell_gate`).

With `lr=0` the gate is frozen and is the probe gate itself, hard: with `bce=0` that trains exactly what the gated
family trains (a test checks it).

Example:
    >>> vector = learn_selfgated(model, PairSplit(0, 0.3), LearnConfig(layers=(12,)), probe_gate)  # doctest: +SKIP
    >>> learned_gate(vector.meta).threshold  # doctest: +SKIP
    0.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from interp.records import Record
from interp.tasks.general import general_examples
from interp.tasks.sampling import select, task_rng
from probes.labels import user_opinion_labels
from steering.artifacts.probe_gate import ProbeGate
from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.splits import PairSplit
from steering.methods.gates import GATE_SOURCE, GATE_SOURCES, gate_features, gate_hash
from steering.methods.learned import LearnConfig, train_steering, trained_vector
from steering.methods.learned_params import AdditiveVector, RowScale

if TYPE_CHECKING:
    from interp.models.loading import ChatModel
    from steering.methods.learned_objective import LearnData

#: the vector meta key the learned gate travels under (`ProbeGate.to_record`)
LEARNED_GATE = "learned_gate"


@dataclass(frozen=True)
class SelfGateConfig(Record):
    """How the gate learns beside the vector (module docstring).

    Args:
        bce: weight of the gate's binary cross-entropy on the user-opinion labels.
        temperature: T of the soft gate `sigmoid(logit / T)` in training (> 0).
        lr: Adam learning rate of the gate, in logit units: `c` moves by about `lr` per step, and `g` by
            `lr / (sqrt(d_model) * mean |h|)` per entry (so `h . g` moves by about `lr`); 0 freezes the gate (the
            probe gate, hard).
        n_general: train-side general requests among the BCE's negatives.
    """

    bce: float = 1.0
    temperature: float = 1.0
    lr: float = 0.1
    n_general: int = 64

    def __post_init__(self) -> None:
        if not (np.isfinite(self.bce) and self.bce >= 0 and np.isfinite(self.lr) and self.lr >= 0):
            raise ValueError("selfgate bce and lr must be finite and >= 0")
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"selfgate temperature must be > 0, got {self.temperature}")
        if self.n_general < 0:
            raise ValueError(f"selfgate n_general must be >= 0, got {self.n_general}")

    @property
    def frozen(self) -> bool:
        return self.lr == 0


class SelfGatedVector(AdditiveVector):
    """The additive vector behind a soft gate that learns with it (module docstring)."""

    def __init__(self, layers: Sequence[int], gate: ProbeGate, settings: SelfGateConfig, split: PairSplit) -> None:
        super().__init__(layers)
        if gate.per != "last_prompt":
            raise ValueError(f"a learned gate reads the last prompt token (per='last_prompt'), not per={gate.per!r}")
        self.gate, self.settings, self.split = gate, settings, split
        self.features = torch.zeros(0)  # [n examples of the data, d]: what the gate reads
        self.labels = torch.zeros(0)  # [n]: 1 the user states an opinion, 0 not, -1 unlabelled
        self.general = torch.zeros(0)  # [n_general, d]: general requests (negatives)
        self.weight = torch.zeros(0)  # g [d]
        self.bias = torch.zeros(())  # c

    def start(self, model: ChatModel, data: LearnData, resid: dict[int, float], config: LearnConfig) -> None:
        super().start(model, data, resid, config)
        settings, gate = self.settings, self.gate
        device = next(model.hf.parameters()).device
        self.weight = torch.as_tensor(gate.scale * gate.direction_unit, dtype=torch.float32).to(device)
        self.bias = torch.tensor(float(gate.bias), device=device)
        if settings.frozen and settings.bce == 0:
            return  # the fixed gate's decisions (`data.row_scale`) are all it needs
        if data.gate_features is None:
            raise ValueError("a learned gate trains through its starting gate: pass it to train_steering")
        self.features = torch.from_numpy(data.gate_features).float().to(device)
        labels = GATE_SOURCES.get(str(gate.meta.get("label_source")), user_opinion_labels)(data.examples)
        y = np.full(len(data.examples), -1.0, dtype=np.float32)
        y[labels.mask] = labels.y
        self.labels = torch.from_numpy(y).to(device)
        pool = [ex for ex in general_examples(None, config.seed) if not self.split.is_test(ex.pair_id)]
        picked = select(pool, min(settings.n_general, len(pool)), task_rng("selfgate-general", config.seed)) \
            if settings.n_general else []
        self.general = torch.from_numpy(gate_features(model, picked, gate, config.batch_size)).float().to(device) \
            if picked else torch.zeros(0, model.d_model, device=device)
        if not settings.frozen:
            self.weight.requires_grad_()
            self.bias.requires_grad_()
            self.tensors.update({"gate.weight": self.weight, "gate.bias": self.bias})
            norm = float(self.features.norm(dim=1).mean())  # each step moves a logit by about `lr`
            self.lrs.update({"gate.weight": settings.lr / (float(np.sqrt(model.d_model)) * max(norm, 1e-6)),
                             "gate.bias": settings.lr})

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """The gate's logit `h . g + c` `[n]` of residuals `[n, d]`."""
        return features @ self.weight + self.bias

    def row_scale(self, data: LearnData, indices: Sequence[int], grad: bool) -> RowScale:
        """Training: the soft gate's values (with their gradient); validation: the hard gate's 0/1 decisions."""
        if self.settings.frozen:
            return super().row_scale(data, indices, grad)
        logits = self.logits(self.features[torch.as_tensor(list(indices), dtype=torch.long)])
        if grad:
            return torch.sigmoid(logits / self.settings.temperature)
        return [float(x) for x in (logits > 0).tolist()]

    def extra_terms(self, data: LearnData, indices: Sequence[int], grad: bool) -> dict[str, torch.Tensor]:
        if self.settings.bce == 0:
            return {}
        rows = torch.as_tensor([i for i in indices if float(self.labels[i]) >= 0], dtype=torch.long)
        features = torch.cat([self.features[rows], self.general])
        y = torch.cat([self.labels[rows], torch.zeros(len(self.general), device=self.labels.device)])
        bce = F.binary_cross_entropy_with_logits(self.logits(features) / self.settings.temperature, y)
        return {"gate_bce": self.settings.bce * bce}

    def fingerprint(self) -> Any:
        return {"selfgate": self.settings.to_dict()}

    def learned(self, best: dict[str, torch.Tensor], meta: dict[str, Any]) -> ProbeGate:
        """The hard gate of the best step (the probe gate itself when frozen), with its provenance."""
        if self.settings.frozen:
            return self.gate
        info = {"label_source": f"learned_{GATE_SOURCE}", "learned": "jointly with the vector (selfgated)",
                "start_hash": gate_hash(self.gate), "selfgate": self.settings.to_dict(),
                "model_hash": self.gate.meta.get("model_hash"), "split": meta["split"],
                "train_pairs_hash": meta["train_pairs_hash"], "wording": meta["learned"]["wording"],
                "start": {k: self.gate.meta[k] for k in ("label_source", "wording", "train_pairs_hash", "C")
                          if k in self.gate.meta}}
        return ProbeGate.from_probe(best["gate.weight"].numpy(), float(best["gate.bias"]), threshold=0.0,
                                    layer=self.gate.layer, site=self.gate.site, per="last_prompt", meta=info)


def learned_gate(meta: dict[str, Any]) -> ProbeGate | None:
    """The learned gate a vector's (or a layer part's) meta carries, None if it carries none."""
    record = meta.get(LEARNED_GATE)
    return ProbeGate.from_record(record) if isinstance(record, dict) else None


def learn_selfgated(
    model: ChatModel, split: PairSplit, config: LearnConfig, gate: ProbeGate,
    settings: SelfGateConfig | None = None, folder: str | Path | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None, stop_after: int | None = None,
) -> SteeringVector:
    """Train a vector and its gate together on the TRAIN side of `split` (resumable from `folder`).

    Args:
        model: the model (its parameters are not changed).
        split: the pair split; only train-side pairs are read.
        config: the learned vector's objective and optimisation settings.
        gate: the probe gate the learned gate starts from (per="last_prompt", at or before the first steered layer).
        settings: how the gate learns (default `SelfGateConfig()`).
        folder: where the checkpoint goes (None: no checkpoint, no resume).
        progress: called after every step with (step, {"loss": ..., ...}).
        stop_after: stop (checkpointed) after this many steps, as if interrupted: for tests.

    Returns:
        The vector (strength -1 = trained, as `learn_vector`'s), its learned gate under `meta["learned_gate"]`.
    """
    settings = settings or SelfGateConfig()
    params = SelfGatedVector(config.layers, gate, settings, split)
    trained = train_steering(model, split, config, params, folder, progress, stop_after, gate)
    vector = trained_vector(model, config, trained)
    learned = params.learned(trained.best, trained.meta)
    meta = {**vector.meta, LEARNED_GATE: learned.to_record(), "selfgate": settings.to_dict()}
    return vector.with_record(method=f"selfgated:{config.target}", meta=meta)
