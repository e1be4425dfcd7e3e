"""The objective of learned steering: what it removes and keeps (`LearnConfig`), the data every step reads
(`LearnData`, `_prepare`) and the loss of one group (`group_loss`).

`steering.methods.learned` (the module docstring says what each term means) trains through it; every
parametrisation (`steering.methods.learned_params`) is scored by the same pass (`learned._pass_loss`), so a
learned vector, a low-rank edit and a vector behind a learned gate optimise one objective on one data set.

Example:
    >>> LearnConfig(layers=(12,), target="known").positions
    'generated'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from interp.models.hooks import hooks_on
from interp.models.loading import ChatModel
from interp.records import Record
from interp.scoring.frozen import FrozenPrefix, frozen_logprobs, frozen_prefix
from interp.sites import parse_site
from interp.tasks.example import Example
from steering.apply.spec import steer_lengths
from steering.artifacts.probe_gate import ProbeGate
from steering.evaluation.evaluate import prompt_tokens
from steering.methods.gates import gate_features
from steering.methods.learned_data import Group

TARGETS = ("correct", "known", "neutral", "third_party")
LEARNABLE_POSITIONS = ("generated", "all", "prompt")
#: the wording pools a vector is measured in and never trained on
MEASURED_WORDINGS = ("dev", "heldout")
SITE_KIND = "hook_resid_post"


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
class LearnData:
    """Everything a step reads: the examples, their frozen prefixes and the unsteered references."""

    examples: list[Example]
    index: dict[str, int]  # example id -> row of `examples`
    tokens: list[int]  # rendered prompt tokens per example
    frozen: FrozenPrefix
    ref_scores: list[torch.Tensor]  # per example: [n_choices] unsteered choice scores
    ref_next: dict[int, torch.Tensor]  # example row -> [vocab] unsteered next-token log-probs (kept prompts)
    row_scale: list[float] | None = None  # per example: 1 steered, 0 held back by the gate (None: all steered)
    gate_features: np.ndarray | None = None  # [n, d]: what the gate reads per example (None: no gate)


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


def _prepare(model: ChatModel, groups: Sequence[Group], config: LearnConfig,
             gate: ProbeGate | None = None) -> tuple[LearnData, dict[int, float]]:
    """Frozen prefixes, unsteered references, the gate's decisions (and what it reads) and the mean residual norm at
    each layer."""
    examples = [ex for g in groups for ex in g.examples.values()]
    features = row_scale = None
    if gate is not None:  # `gate_training.gate_decisions`, keeping the residuals the gate reads
        if gate.per != "last_prompt":
            raise ValueError(f"training through a gate needs per='last_prompt', this gate has per={gate.per!r}")
        features = gate_features(model, examples, gate, config.batch_size)  # [n, d]
        row_scale = [float(x) for x in gate.decide(gate.score(torch.from_numpy(features)[:, None, :])[:, 0])]
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
    data = LearnData(examples, {ex.id: i for i, ex in enumerate(examples)}, tokens, frozen, ref_scores, nexts, row_scale,
                     features)
    return data, resid


def _kl(ref_logp: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """KL(ref || new) of log-probability vectors `[..., n]`."""
    return (ref_logp.exp() * (ref_logp - logp)).sum(-1)


def group_loss(config: LearnConfig, data: LearnData, group: Group, values: dict[tuple[int, int], list[Any]],
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
