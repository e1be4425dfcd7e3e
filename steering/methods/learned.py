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

Example:
    >>> vector = learn_vector(model, PairSplit(0, 0.3), LearnConfig(layers=(12,)), folder="out/learned")  # doctest: +SKIP
    >>> with steer(model, vector, -1.0, layers=12, positions="generated", prompt_lengths=...):  # doctest: +SKIP
    ...     ...
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from interp.models.hooks import hooks_on
from interp.models.loading import ChatModel
from interp.records import Record
from interp.scoring.frozen import FrozenPrefix, frozen_logprobs, frozen_prefix
from interp.sites import parse_site
from interp.store.tagged_file import read_tagged, write_tagged
from interp.tasks.example import Example
from steering.apply.interventions import LayerVector
from steering.apply.spec import SteerSpec, steer_lengths
from steering.artifacts.probe_gate import ProbeGate
from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.evaluate import prompt_tokens
from steering.evaluation.splits import PairSplit, pairs_hash
from steering.methods.gates import gate_decisions, gate_hash
from steering.methods.learned_data import Group, learning_groups

TARGETS = ("correct", "known", "neutral", "third_party")
LEARNABLE_POSITIONS = ("generated", "all", "prompt")
#: the wording pools a vector is measured in and never trained on
MEASURED_WORDINGS = ("dev", "heldout")
SITE_KIND = "hook_resid_post"
CHECKPOINT = "checkpoint.safetensors"


@dataclass(frozen=True)
class LearnConfig(Record):
    """What a learned vector removes and keeps, and how it is trained (saved in the vector's meta).

    Args:
        layers: layers to steer (one trained vector each, trained jointly).
        positions: "generated" (from the last prompt token on; the KV of the prompt is frozen), "all"
            (every token, as llama.cpp applies a control vector) or "prompt".
        target: what removing deference means: "correct", "known", "neutral" or "third_party" (module docstring).
        tasks: tasks in the training mix (`steering.methods.learned_data.ROLES`).
        n_pairs: answer-task questions; other tasks take a share (`learned_data.SHARE`).
        wording: the answer task's opinion sentences and layouts: "varied" (hundreds built from parts,
            `interp.tasks.paraphrase`), "train" (14 sentences, 9 layouts) or "bank" (never "dev" or "heldout").
        exclude_categories: fact-bank categories never trained on.
        kl_neutral, kl_user_right, kl_third_party: weights of the next-token KL on those prompts.
        hinge: weight of the hinge keeping the user-right margin (correct over wrong) at least unsteered.
        right_ce: targets "correct" and "known" (where it applies "correct"): weight of the cross-entropy of the correct answer on the user-right
            prompt (answer correctly whatever the user says, not "away from the user").
        max_norm: cap on each layer's vector, as a share of the layer's mean residual norm.
        lr: Adam learning rate, in units of the layer's mean residual norm / sqrt(d_model) per step.
        steps: maximum optimiser steps.
        groups_per_step: groups (questions) in each minibatch.
        eval_every: steps between validation evaluations (and checkpoints).
        patience: evaluations without a better validation loss before stopping.
        val_fraction: share of training pairs held out for early stopping.
        batch_size: rows per forward pass.
        seed: data, subset and minibatch seed.
    """

    layers: tuple[int, ...] = (12,)
    positions: str = "generated"
    target: str = "correct"
    tasks: tuple[str, ...] = ("answer",)
    n_pairs: int = 80
    wording: str = "varied"
    exclude_categories: tuple[str, ...] = ()
    kl_neutral: float = 0.3
    kl_user_right: float = 0.3
    kl_third_party: float = 0.3
    hinge: float = 0.3
    right_ce: float = 0.3
    max_norm: float = 0.5
    lr: float = 0.05
    steps: int = 40
    groups_per_step: int = 16
    eval_every: int = 10
    patience: int = 4
    val_fraction: float = 0.2
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("layers", "tasks", "exclude_categories"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.target not in TARGETS:
            raise ValueError(f"unknown target {self.target!r}: choose from {', '.join(TARGETS)}")
        if self.wording in MEASURED_WORDINGS:
            raise ValueError(f"wording {self.wording!r} is for measuring (never trained on): train on 'varied', "
                             "'train' or 'bank'")
        if self.positions not in LEARNABLE_POSITIONS:
            raise ValueError(f"unknown positions {self.positions!r}: choose from {', '.join(LEARNABLE_POSITIONS)}")
        if not self.layers:
            raise ValueError("a learned vector needs at least one layer")
        if self.steps < 1 or self.groups_per_step < 1 or self.eval_every < 1 or self.batch_size < 1:
            raise ValueError("steps, groups_per_step, eval_every and batch_size must be >= 1")
        weights = (self.kl_neutral, self.kl_user_right, self.kl_third_party, self.hinge, self.right_ce,
                   self.max_norm, self.lr)
        if any(not np.isfinite(w) or w < 0 for w in weights) or self.max_norm == 0 or self.lr == 0:
            raise ValueError("weights must be finite and >= 0; max_norm and lr > 0")


@dataclass(frozen=True, eq=False)
class _Data:
    """Everything a step reads: the examples, their frozen prefixes and the unsteered references."""

    examples: list[Example]
    index: dict[str, int]  # example id -> row of `examples`
    tokens: list[int]  # rendered prompt tokens per example
    frozen: FrozenPrefix
    ref_scores: list[torch.Tensor]  # per example: [n_choices] unsteered choice scores
    ref_next: dict[int, torch.Tensor]  # example row -> [vocab] unsteered next-token log-probs (kept prompts)
    row_scale: list[float] | None = None  # per example: 1 steered, 0 held back by the gate (None: all steered)


def _kept(group: Group) -> list[Example]:
    return [ex for ex in (group.baseline, group.user_right, group.control) if ex is not None]


def _scores(values: dict[tuple[int, int], list[Any]], row: int, ex: Example) -> torch.Tensor:
    """Choice scores `[n_choices]`: total log-prob for ratings (feedback), else the mean per token."""
    per = [torch.stack([torch.as_tensor(v) for v in values[(row, j)]]) for j in range(len(ex.choices))]
    return torch.stack([p.sum() if ex.task == "feedback" else p.mean() for p in per])


@contextmanager
def _frozen_model(model: ChatModel) -> Iterator[None]:
    """Model parameters without gradients for the duration (restored after): only the vector learns."""
    flags = [(p, p.requires_grad) for p in model.hf.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def learned_context(model: ChatModel, params: dict[int, torch.Tensor], positions: str,
                    tokens: Sequence[int], row_scale: Sequence[float] | None = None,
                    ) -> Callable[[list[int]], AbstractContextManager[object]]:
    """A `row_context` that adds `params[layer]` (tensors, e.g. trainable) through `steer()` at `positions`.

    Args:
        model: the model.
        params: layer -> `[d_model]` tensor added at that layer's `hook_resid_post`.
        positions: "generated", "all" or "prompt" (`steering.apply.spec`'s offset rule applies).
        tokens: rendered prompt tokens of every example the row indices refer to.
        row_scale: per example, the strength its rows get (a gate's 0/1 decisions; None: 1 everywhere).
    """
    zero = SteeringVector({layer: np.zeros(model.d_model, np.float32) for layer in params}, method="learned",
                          d_model=model.d_model, model_hash=model.weights_hash)
    spec = SteerSpec(zero, tuple(sorted(params)), positions)

    @contextmanager
    def context(rows: list[int]) -> Iterator[object]:
        strengths = 1.0 if row_scale is None else [float(row_scale[i]) for i in rows]
        with spec.context(model, strengths, [tokens[i] for i in rows]) as handle:
            plan = handle.plan  # type: ignore[attr-defined]
            vectors = {site: LayerVector(params[site.layer], params[site.layer], 1.0) for site in plan.sites}
            handle.plan = replace(plan, vectors=vectors)  # type: ignore[attr-defined]
            yield handle

    return context


def _prepare(model: ChatModel, groups: Sequence[Group], config: LearnConfig,
             gate: ProbeGate | None = None) -> tuple[_Data, dict[int, float]]:
    """Frozen prefixes, unsteered references, the gate's decisions and the mean residual norm at each layer."""
    examples = [ex for g in groups for ex in g.examples.values()]
    row_scale = None if gate is None else [float(x) for x in gate_decisions(model, examples, gate, config.batch_size)[0]]
    tokens = prompt_tokens(model, examples)
    lengths = steer_lengths(tokens) if config.positions == "generated" else [0] * len(examples)
    frozen = frozen_prefix(model, examples, lengths, batch_size=config.batch_size)
    reference = frozen if config.positions == "generated" else frozen_prefix(
        model, examples, steer_lengths(tokens), batch_size=config.batch_size)
    kept = {id(ex) for g in groups for ex in _kept(g)}
    want = [i for i, ex in enumerate(examples) if id(ex) in kept]
    norms: dict[int, list[torch.Tensor]] = {layer: [] for layer in config.layers}

    def recorder(layer: int) -> Callable[[torch.Tensor], None]:
        def fn(h: torch.Tensor) -> None:
            norms[layer].append(h.detach().float().norm(dim=-1).flatten())

        return fn

    sites = {parse_site(f"blocks.{layer}.{SITE_KIND}", model.n_layers): recorder(layer) for layer in config.layers}
    with hooks_on(model, sites):
        values, nexts = frozen_logprobs(model, examples, reference, config.batch_size, next_token_of=want)
    ref_scores = [_scores(values, i, ex).float() for i, ex in enumerate(examples)]
    resid = {layer: float(torch.cat(v).mean()) for layer, v in norms.items()}
    data = _Data(examples, {ex.id: i for i, ex in enumerate(examples)}, tokens, frozen, ref_scores, nexts, row_scale)
    return data, resid


def _kl(ref_logp: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """KL(ref || new) of log-probability vectors `[..., n]`."""
    return (ref_logp.exp() * (ref_logp - logp)).sum(-1)


def group_loss(config: LearnConfig, data: _Data, group: Group, values: dict[tuple[int, int], list[Any]],
               nexts: dict[int, torch.Tensor], rows: dict[str, int]) -> dict[str, torch.Tensor]:
    """The objective's terms for one group (module docstring); `rows` maps example id -> row of the pass."""
    p = group.pressure
    scores = _scores(values, rows[p.id], p)
    logp = torch.log_softmax(scores, -1)
    target = config.target
    if target == "known":  # the correct answer where the model knows it without the opinion, else its own answer
        known = p.correct is not None and int(data.ref_scores[data.index[group.baseline.id]].argmax()) == p.correct
        target = "correct" if known else "neutral"
    if target == "correct" and p.correct is None:
        target = "neutral"
    if target == "correct":
        remove = -logp[p.correct]
    else:
        ref = group.baseline if target == "neutral" else group.control
        remove = _kl(torch.log_softmax(data.ref_scores[data.index[ref.id]], -1).to(logp.device), logp)
    terms = {"remove": remove}
    weights = {group.baseline.id: config.kl_neutral, group.control.id: config.kl_third_party}
    keep = torch.zeros((), device=logp.device)
    right = group.user_right
    if right is not None:
        weights[right.id] = config.kl_user_right
        s = _scores(values, rows[right.id], right)
        wrong = 1 - right.correct if right.correct is not None and len(right.choices) == 2 else None
        if wrong is not None and right.correct is not None:
            ref = data.ref_scores[data.index[right.id]].to(s.device)
            margin, ref_margin = s[right.correct] - s[wrong], ref[right.correct] - ref[wrong]
            terms["hinge"] = config.hinge * F.relu(ref_margin - margin)
            if target == "correct" and config.right_ce:
                terms["remove"] = terms["remove"] - config.right_ce * torch.log_softmax(s, -1)[right.correct]
    for ex_id, weight in weights.items():
        if weight:
            keep = keep + weight * _kl(data.ref_next[data.index[ex_id]].to(logp.device), nexts[rows[ex_id]])
    terms["keep"] = keep
    return terms


def _pass_loss(model: ChatModel, config: LearnConfig, data: _Data, groups: Sequence[Group],
               params: dict[int, torch.Tensor], grad: bool) -> tuple[torch.Tensor, dict[str, float], list[float]]:
    """Loss over `groups` (mean), its terms, and whether each answer-task pressured prompt chose correctly."""
    examples = [ex for g in groups for ex in g.examples.values()]
    rows = {ex.id: i for i, ex in enumerate(examples)}
    tokens = [data.tokens[data.index[ex.id]] for ex in examples]
    kept = [rows[ex.id] for g in groups for ex in _kept(g)]
    scale = None if data.row_scale is None else [data.row_scale[data.index[ex.id]] for ex in examples]
    context = learned_context(model, params, config.positions, tokens, scale)
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
    return total / len(groups), {k: v / len(groups) for k, v in sums.items()}, correct


def _fingerprint(model: ChatModel, split: PairSplit, config: LearnConfig, groups: Sequence[Group],
                 gate: ProbeGate | None = None) -> str:
    parts = [model.weights_hash, split.to_dict(), config.to_dict(), pairs_hash(g.pair_id for g in groups)]
    if gate is not None:
        parts.append(gate_hash(gate))
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _save_checkpoint(path: Path, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    write_tagged(path, {k: v.detach().cpu().numpy() for k, v in tensors.items()}, {"workbench": state})


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
    start = time.perf_counter()
    train, val = learning_groups(split, config.tasks, config.n_pairs, config.seed, config.wording,
                                 config.exclude_categories, config.val_fraction)
    if any(split.is_test(g.pair_id) for g in (*train, *val)):
        raise ValueError("learned vector: a training group sits on the test side of the split")
    if gate is not None and gate.layer > min(config.layers):
        raise ValueError(f"the gate reads layer {gate.layer}, after the first steered layer {min(config.layers)}")
    data, resid = _prepare(model, [*train, *val], config, gate)
    device = next(model.hf.parameters()).device
    params = {layer: torch.zeros(model.d_model, device=device, requires_grad=True) for layer in config.layers}
    scale = {layer: resid[layer] / np.sqrt(model.d_model) for layer in config.layers}
    optimisers = {layer: torch.optim.Adam([params[layer]], lr=config.lr * scale[layer]) for layer in config.layers}
    fingerprint = _fingerprint(model, split, config, [*train, *val], gate)
    state: dict[str, Any] = {"format": "workbench.learned_checkpoint/1", "fingerprint": fingerprint, "step": 0,
                             "best_val": None, "best_step": 0, "bad_evals": 0, "history": [], "done": False}
    best = {layer: torch.zeros(model.d_model) for layer in config.layers}
    path = Path(folder) / CHECKPOINT if folder is not None else None
    if path is not None and path.is_file():
        records, tensors = read_tagged(path, "learned-vector checkpoint")
        old = records.get("workbench", {})
        if isinstance(old, dict) and old.get("fingerprint") == fingerprint:
            state = old
            for layer in config.layers:
                with torch.no_grad():
                    params[layer].copy_(torch.from_numpy(tensors[f"param.{layer}"]))
                best[layer] = torch.from_numpy(tensors[f"best.{layer}"])
                opt = optimisers[layer]
                if state.get("adam_step"):
                    opt.state[params[layer]] = {
                        "step": torch.tensor(float(state["adam_step"])),
                        "exp_avg": torch.from_numpy(tensors[f"exp_avg.{layer}"]).to(device),
                        "exp_avg_sq": torch.from_numpy(tensors[f"exp_avg_sq.{layer}"]).to(device)}
    history: list[dict[str, Any]] = state["history"]

    def checkpoint() -> None:
        if path is None:
            return
        tensors: dict[str, torch.Tensor] = {}
        for layer in config.layers:
            tensors[f"param.{layer}"], tensors[f"best.{layer}"] = params[layer], best[layer]
            st = optimisers[layer].state.get(params[layer], {})
            tensors[f"exp_avg.{layer}"] = st.get("exp_avg", torch.zeros(model.d_model))
            tensors[f"exp_avg_sq.{layer}"] = st.get("exp_avg_sq", torch.zeros(model.d_model))
            state["adam_step"] = float(st["step"]) if "step" in st else 0.0
        _save_checkpoint(path, state, tensors)

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
            for layer, opt in optimisers.items():
                opt.step()
                with torch.no_grad():  # the norm cap: a share of the layer's mean residual norm
                    cap = config.max_norm * resid[layer]
                    norm = float(params[layer].norm())
                    if norm > cap:
                        params[layer].mul_(cap / norm)
            state["step"] = step + 1
            entry: dict[str, Any] = {"step": step + 1, "loss": float(loss.detach()), **terms,
                                     "norm": {str(k): float(v.detach().norm()) for k, v in params.items()}}
            if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
                with torch.no_grad():
                    vloss, vterms, vcorrect = _pass_loss(model, config, data, val, params, grad=False)
                entry.update({"val_loss": float(vloss), **{f"val_{k}": v for k, v in vterms.items()},
                              "val_user_wrong_accuracy": float(np.mean(vcorrect)) if vcorrect else float("nan")})
                if state["best_val"] is None or float(vloss) < state["best_val"]:
                    state["best_val"], state["best_step"], state["bad_evals"] = float(vloss), step + 1, 0
                    best = {layer: params[layer].detach().cpu().clone() for layer in config.layers}
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
        "sign": "points toward sycophancy (the negative of the trained vector): strength -1 is the trained "
                "intervention, negative strengths steer away from sycophancy",
        "scale": "raw residual units: strength -1 adds the trained vector",
        "tasks": list(config.tasks), "positions_trained": config.positions,
    }
    if gate is not None and data.row_scale is not None:
        meta["gate"] = {"hash": gate_hash(gate), "layer": gate.layer, "trained_through_gate": True,
                        "fired_on_training_rows": float(np.mean(data.row_scale)), **{
                            k: gate.meta[k] for k in ("label_source", "wording", "train_pairs_hash") if k in gate.meta}}
    return SteeringVector(
        {layer: (-best[layer]).numpy().astype(np.float32) for layer in config.layers},
        method=f"learned:{config.target}", d_model=model.d_model, site_kind=SITE_KIND,
        model_hash=model.weights_hash, arch=model.arch, dataset_hash=pairs_hash(train_pairs),
        resid_norms=resid, positions=config.positions, meta=meta,
    )
