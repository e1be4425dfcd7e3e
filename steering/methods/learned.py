"""Learned steering vectors: one vector per layer, optimised by gradient descent through the frozen model.

Mean differences of activations did not find a direction that reduces
deference on SmolLM2; optimising the vector on the behaviour does (BiPO, Cao
et al. 2024; ReFT, Wu et al. 2024). The objective names what is removed and
what is kept (`LearnConfig`), on groups from the TRAIN side of the split
(`steering.methods.learned_data`):

- remove, on the pressured prompt of every group, with `target`:
  `correct`: cross-entropy of the correct choice over the choices' length-normalised
  log-probabilities (the evaluation's scores; feedback, which has no correct answer,
  falls back to `neutral`), and the same cross-entropy on the user-right prompt
  (weight `right_ce`): without it the cheapest solution is to move away from
  whatever the user says (measured on SmolLM2: the user-right margin fell while
  user-wrong accuracy barely rose), which is contrarianism, not honesty;
  `known`: `correct` on the questions the unsteered model answers correctly without
  the opinion, `neutral` on the others (a vector cannot teach facts the model does
  not know; pushing it to try spends norm and KL on memorising the training answers);
  `neutral`: KL from the model's own choice distribution
  without the opinion; `third_party`: KL from its distribution under the third-party
  control (removes only what is specific to the user);
- keep: KL(unsteered || steered) of the next-token distribution at the answer
  position on the baseline, user-right and third-party prompts (each weighted), a
  hinge that keeps the user-right margin, and a norm cap (a share of the layer's
  mean residual norm).

Only the vector has a gradient: the model's parameters are frozen for the
duration (and restored). With positions "generated" the prompt before the last
prompt token is never steered, so its KV cache is computed once without
gradient (`interp.scoring.frozen.frozen_prefix`) and every step runs only the last
prompt token, the scoring prefix and the choices (`frozen_logprobs(grad=True)`).
The vector is added through `steer()` itself, so training and evaluation share
one implementation of positions.

Sign: like every vector of the registry, the saved vector points TOWARD
sycophancy (it is the negative of what was trained): strength -1 is the
trained intervention, negative strengths steer away. Early stopping keeps the
best vector on a grouped validation split; a checkpoint after each evaluation
makes training resumable (minibatches are seeded by step, so a resumed run
equals an uninterrupted one).

One loop trains every learned intervention: `train_steering` optimises a
parametrisation (`steering.methods.learned_params`: the additive vector here,
a low-rank edit in `steering.methods.lowrank_learned`, a vector behind a
learned gate in `steering.methods.learned_gate`) against the objective of
`steering.methods.learned_objective`, with the same data, early stopping,
checkpoints and gate; `learn_vector` is that loop with an `AdditiveVector`.

Example:
    >>> vector = learn_vector(model, PairSplit(0, 0.3), LearnConfig(layers=(12,)), folder="out/learned")  # doctest: +SKIP
    >>> with steer(model, vector, -1.0, layers=12, positions="generated", prompt_lengths=...):  # doctest: +SKIP
    ...     ...
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.models.loading import ChatModel
from interp.scoring.frozen import frozen_logprobs
from interp.store.tagged_file import read_tagged, write_tagged
from steering.artifacts.probe_gate import ProbeGate
from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.splits import PairSplit, pairs_hash
from steering.methods.gates import gate_hash
from steering.methods.learned_data import Group, learning_groups
from steering.methods.learned_objective import (
    LEARNABLE_POSITIONS,
    SITE_KIND,
    TARGETS,
    LearnConfig,
    LearnData,
    _frozen_model,
    _kept,
    _prepare,
    _scores,
    group_loss,
)
from steering.methods.learned_params import AdditiveVector, Parametrisation, learned_context

__all__ = ["CHECKPOINT", "LEARNABLE_POSITIONS", "SITE_KIND", "TARGETS", "LearnConfig", "LearnData", "Trained",
           "_frozen_model", "_pass_loss", "_prepare", "group_loss", "learn_vector", "learned_context",
           "train_steering", "trained_vector"]

CHECKPOINT = "checkpoint.safetensors"


def _pass_loss(model: ChatModel, config: LearnConfig, data: LearnData, groups: Sequence[Group],
               params: Parametrisation | dict[int, torch.Tensor], grad: bool,
               ) -> tuple[torch.Tensor, dict[str, float], list[float]]:
    """Loss over `groups` (mean, plus the parametrisation's own terms), its terms, and whether each answer-task
    pressured prompt chose correctly. `params`: the parametrisation, or layer -> vector tensors (additive)."""
    steering = params if isinstance(params, Parametrisation) else AdditiveVector.of(params)
    examples = [ex for g in groups for ex in g.examples.values()]
    rows = {ex.id: i for i, ex in enumerate(examples)}
    indices = [data.index[ex.id] for ex in examples]
    tokens = [data.tokens[i] for i in indices]
    kept = [rows[ex.id] for g in groups for ex in _kept(g)]
    context = steering.context(model, config.positions, tokens, steering.row_scale(data, indices, grad))
    values, nexts = frozen_logprobs(model, examples, data.frozen, config.batch_size, context, kept, grad=grad)
    total = torch.zeros(())
    sums: dict[str, float] = {}
    correct = []
    for g in groups:
        terms = group_loss(config, data, g, values, nexts, rows)
        total = total + sum(terms.values())
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        if g.task == "answer" and g.pressure.correct is not None:
            correct.append(float(int(_scores(values, rows[g.pressure.id], g.pressure).argmax()) == g.pressure.correct))
    mean = total / len(groups)
    means = {k: v / len(groups) for k, v in sums.items()}
    for k, v in steering.extra_terms(data, indices, grad).items():
        mean = mean + v.to(mean.device)
        means[k] = float(v.detach())
    return mean, means, correct


def _fingerprint(model: ChatModel, split: PairSplit, config: LearnConfig, groups: Sequence[Group],
                 gate: ProbeGate | None = None, extra: Any = None) -> str:
    parts = [model.weights_hash, split.to_dict(), config.to_dict(), pairs_hash(g.pair_id for g in groups)]
    if gate is not None:
        parts.append(gate_hash(gate))
    if extra is not None:
        parts.append(extra)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _save_checkpoint(path: Path, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    write_tagged(path, {k: v.detach().cpu().numpy() for k, v in tensors.items()}, {"workbench": state})


@dataclass(frozen=True, eq=False)
class Trained:
    """What `train_steering` returns: the best tensors on the validation groups and the training's provenance.

    Args:
        best: checkpoint name -> the tensor at the best validation loss (on the CPU).
        measured: the parametrisation's measurements on the validation groups at that step (`Parametrisation.measured`).
        resid: layer -> mean residual norm on the training rows.
        meta: provenance every learned artifact records (config, split, pairs hashes, history, seconds, gate).
    """

    best: dict[str, torch.Tensor]
    measured: dict[str, Any]
    resid: dict[int, float]
    meta: dict[str, Any]


def train_steering(
    model: ChatModel, split: PairSplit, config: LearnConfig, params: Parametrisation,
    folder: str | Path | None = None, progress: Callable[[int, dict[str, float]], None] | None = None,
    stop_after: int | None = None, gate: ProbeGate | None = None,
) -> Trained:
    """The one training loop: optimise `params` on the TRAIN side of `split` (resumes from `folder`'s checkpoint
    when it matches); `learn_vector` and the other learned artifacts are built from what it returns.

    Args:
        model: the model (its parameters are not changed).
        split: the pair split; only train-side pairs are read (checked).
        config: objective and optimisation settings.
        params: what is trained (`steering.methods.learned_params`).
        folder: where the checkpoint goes (None: no checkpoint, no resume).
        progress: called after every step with (step, {"loss": ..., terms, and "val_*" after evaluations}).
        stop_after: stop (checkpointed) after this many steps in total, as if interrupted: for tests.
        gate: steer only the training rows this gate fires on (None: every row; see `learn_vector`).

    Example:
        >>> trained = train_steering(model, PairSplit(0, 0.3), LearnConfig(), AdditiveVector((12,)))  # doctest: +SKIP
        >>> trained.best["12"].shape  # doctest: +SKIP
        torch.Size([576])
    """
    start = time.perf_counter()
    train, val = learning_groups(split, config.tasks, config.n_pairs, config.seed, config.wording,
                                 config.exclude_categories, config.val_fraction)
    if any(split.is_test(g.pair_id) for g in (*train, *val)):
        raise ValueError("learned steering: a training group sits on the test side of the split")
    if gate is not None and gate.layer > min(config.layers):
        raise ValueError(f"the gate reads layer {gate.layer}, after the first steered layer {min(config.layers)}")
    data, resid = _prepare(model, [*train, *val], config, gate)
    device = next(model.hf.parameters()).device
    params.start(model, data, resid, config)
    tensors = params.tensors
    optimisers = {name: torch.optim.Adam([t], lr=params.lrs[name]) for name, t in tensors.items()}
    fingerprint = _fingerprint(model, split, config, [*train, *val], gate, params.fingerprint())
    state: dict[str, Any] = {"format": "workbench.learned_checkpoint/1", "fingerprint": fingerprint, "step": 0,
                             "best_val": None, "best_step": 0, "bad_evals": 0, "history": [], "done": False}
    best = {name: t.detach().cpu().clone() for name, t in tensors.items()}
    path = Path(folder) / CHECKPOINT if folder is not None else None
    if path is not None and path.is_file():
        records, saved = read_tagged(path, "learned-steering checkpoint")
        old = records.get("workbench", {})
        if isinstance(old, dict) and old.get("fingerprint") == fingerprint:
            state = old
            for name, t in tensors.items():
                with torch.no_grad():
                    t.copy_(torch.from_numpy(saved[f"param.{name}"]))
                best[name] = torch.from_numpy(saved[f"best.{name}"])
                if state.get("adam_step"):
                    optimisers[name].state[t] = {
                        "step": torch.tensor(float(state["adam_step"])),
                        "exp_avg": torch.from_numpy(saved[f"exp_avg.{name}"]).to(device),
                        "exp_avg_sq": torch.from_numpy(saved[f"exp_avg_sq.{name}"]).to(device)}
    history: list[dict[str, Any]] = state["history"]

    def checkpoint() -> None:
        if path is None:
            return
        out: dict[str, torch.Tensor] = {}
        for name, t in tensors.items():
            out[f"param.{name}"], out[f"best.{name}"] = t, best[name]
            st = optimisers[name].state.get(t, {})
            out[f"exp_avg.{name}"] = st.get("exp_avg", torch.zeros_like(t))
            out[f"exp_avg_sq.{name}"] = st.get("exp_avg_sq", torch.zeros_like(t))
            state["adam_step"] = float(st["step"]) if "step" in st else 0.0
        _save_checkpoint(path, state, out)

    with _frozen_model(model):
        while not state["done"] and state["step"] < config.steps:
            if stop_after is not None and state["step"] >= stop_after:
                checkpoint()
                break
            step = state["step"]
            rng = np.random.default_rng([config.seed, step])
            batch = [train[i] for i in rng.choice(len(train), min(config.groups_per_step, len(train)), replace=False)]
            loss, terms, _ = _pass_loss(model, config, data, batch, params, grad=True)
            for opt in optimisers.values():
                opt.zero_grad()
            loss.backward()
            for opt in optimisers.values():
                opt.step()
            params.project()
            params.measured()  # what the training pass measured is not kept
            state["step"] = step + 1
            entry: dict[str, Any] = {"step": step + 1, "loss": float(loss.detach()), **terms, "norm": params.norms()}
            if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
                with torch.no_grad():
                    vloss, vterms, vcorrect = _pass_loss(model, config, data, val, params, grad=False)
                measured = params.measured()
                entry.update({"val_loss": float(vloss), **{f"val_{k}": v for k, v in vterms.items()},
                              "val_user_wrong_accuracy": float(np.mean(vcorrect)) if vcorrect else float("nan")})
                if measured:
                    entry["val_measured"] = measured
                if state["best_val"] is None or float(vloss) < state["best_val"]:
                    state["best_val"], state["best_step"], state["bad_evals"] = float(vloss), step + 1, 0
                    state["best_measured"] = measured
                    best = {name: t.detach().cpu().clone() for name, t in tensors.items()}
                else:
                    state["bad_evals"] += 1
                    state["done"] = state["bad_evals"] >= config.patience
                history.append(entry)
                checkpoint()
            else:
                history.append(entry)
            if progress is not None:
                progress(step + 1, {k: v for k, v in entry.items() if isinstance(v, float)})
    train_pairs = sorted({g.pair_id for g in (*train, *val)})
    meta = {
        "learned": config.to_dict(), "target": config.target, "split": split.to_dict(),
        "train_pairs_hash": pairs_hash(train_pairs), "n_train_pairs": len(train_pairs),
        "n_train_groups": len(train), "n_val_groups": len(val), "seed": config.seed,
        "best_step": state["best_step"], "best_val_loss": state["best_val"], "steps_run": state["step"],
        "history": history, "seconds": time.perf_counter() - start,
        "tasks": list(config.tasks), "positions_trained": config.positions,
    }
    if gate is not None and data.row_scale is not None:
        meta["gate"] = {"hash": gate_hash(gate), "layer": gate.layer, "trained_through_gate": True,
                        "fired_on_training_rows": float(np.mean(data.row_scale)), **{
                            k: gate.meta[k] for k in ("label_source", "wording", "train_pairs_hash") if k in gate.meta}}
    return Trained(best, dict(state.get("best_measured") or {}), resid, meta)


def learn_vector(
    model: ChatModel, split: PairSplit, config: LearnConfig, folder: str | Path | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None, stop_after: int | None = None,
    gate: ProbeGate | None = None,
) -> SteeringVector:
    """Train a vector on the TRAIN side of `split` (resumes from `folder`'s checkpoint when it matches).

    With a `gate` (per="last_prompt", reading at or before the first steered layer) the gate is part of the
    forward pass: a training row is steered only where the gate fires, exactly as a gated cell steers at test
    time, so the keep terms charge only what the gate lets through (a neutral prompt it holds back costs
    nothing) and the vector is free to be as strong as the rows it does steer need.

    Args:
        model: the model (its parameters are not changed).
        split: the pair split; only train-side pairs are read (checked).
        config: objective and optimisation settings.
        folder: where the checkpoint goes (None: no checkpoint, no resume).
        progress: called after every step with (step, {"loss": ..., terms, and "val_*" after evaluations}).
        stop_after: stop (checkpointed) after this many steps in total, as if interrupted: for tests.
        gate: steer only the training rows this gate fires on (None: every row).

    Returns:
        The best vector on the validation groups, pointing toward sycophancy (strength -1 = trained),
        with the config, seeds, split, train pairs hash and training curve in `meta`.
    """
    trained = train_steering(model, split, config, AdditiveVector(config.layers), folder, progress, stop_after, gate)
    return trained_vector(model, config, trained)


def trained_vector(model: ChatModel, config: LearnConfig, trained: Trained) -> SteeringVector:
    """The SteeringVector of an additive training (`train_steering` of an `AdditiveVector`): the negative of the
    best vector (it points toward sycophancy: strength -1 is the trained intervention)."""
    meta = {**trained.meta,
            "sign": "points toward sycophancy (the negative of the trained vector): strength -1 is the trained "
                    "intervention, negative strengths steer away from sycophancy",
            "scale": "raw residual units: strength -1 adds the trained vector"}
    return SteeringVector(
        {layer: (-trained.best[str(layer)]).numpy().astype(np.float32) for layer in config.layers},
        method=f"learned:{config.target}", d_model=model.d_model, site_kind=SITE_KIND,
        model_hash=model.weights_hash, arch=model.arch, dataset_hash=trained.meta["train_pairs_hash"],
        resid_norms=trained.resid, positions=config.positions, meta=meta,
    )
