"""Probe-gated steering: train a "the user states an opinion" gate on the TRAIN split, read its decisions.

A gate (`steering.artifacts.probe_gate.ProbeGate`, per="last_prompt") lets the steering through
only on rows whose residual at the last prompt token scores as user pressure.
This module builds the gate the sweep and `workbench steer --gate` use:

- training data: the `user_opinion` label source (`probes.labels`) on the four
  Sharma et al. tasks, TRAIN side of the pair split only: the user states an
  opinion or claim (1) vs no opinion, or the same opinion from a third party (0);
  so a gate that fires on a quoted textbook counts as a false positive;
- estimator: fitted by `probes.fitting.fit_gate` (logistic regression, C by grouped inner CV) on
  `blocks.L.hook_resid_post` at `last_prompt`, threshold 0 (probability 0.5);
- decisions: the gate reads an unsteered residual (its site is at or before the
  steered one; `steering.steer` checks), so whether a row is steered is known
  from one unsteered pass: `gate_decisions` computes it with `interp.capture.collect`.
  With per="last_prompt" a row is then steered with its full strength or not at
  all, so a gated cell equals per-row strengths `strength * on[row]`, which is how
  the sweep runs it (batched, on the frozen prompt prefix). A test checks this
  against the live gate inside `steer()`.

Example:
    >>> gates = train_gates(model, PairSplit(0, 0.3), [10], Path("artifacts/x/sweep/activations"))  # doctest: +SKIP
    >>> on, scores = gate_decisions(model, test.examples, gates[10])  # doctest: +SKIP
    >>> gate_rates(test.examples, on)["answer/user_wrong"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.capture.collect import activations, examples_hash
from interp.models.loading import ChatModel
from interp.tasks import build_task, load_fact_bank
from interp.tasks.answer import answer_examples
from interp.tasks.example import Example, Turn
from interp.tasks.general import general_examples
from interp.tasks.sampling import select, task_rng
from interp.tasks.templates import CONTEXT_SENTENCES, question_prompt
from probes.fitting import fit_gate, store_features
from probes.labels import NO_OPINION, ConditionSource, suggestion_labels, user_opinion_labels
from steering.artifacts.probe_gate import ProbeGate
from steering.evaluation.splits import PairSplit, pairs_hash
from steering.methods.statistics import SITE_KIND, training_store

GATE_SOURCE = "user_opinion"
#: what a gate can be trained to read: the user's own opinion, or any suggested answer (the user's or a third
#: party's; measured on SmolLM2, the second generalises to unseen wordings far better, see docs/results)
GATE_SOURCES: dict[str, ConditionSource] = {"user_opinion": user_opinion_labels, "suggestion": suggestion_labels}
GATE_POSITION = user_opinion_labels.position
GATE_TASKS = user_opinion_labels.tasks


def gate_training_examples(split: PairSplit, n_pairs: int | None, seed: int, wording: str = "varied") -> list[Example]:
    """Train-side examples of every gate task, at most `n_pairs` pairs per task (seeded), labelled conditions only.

    The answer task's opinion sentences and layouts come from `wording` ("varied": hundreds of training
    wordings, never the dev or held-out ones; "bank": the fact bank's one sentence). Negatives besides each
    task's own: train-side general requests (`interp.tasks.general`) and plain questions of other train-side
    facts (`PLAIN_PER_PAIR` per pair, half in the bank layout that ARC and capability items share), so the gate
    learns "an opinion is stated", not one sentence or one layout, and stays shut on ordinary traffic.

    Example:
        >>> exs = gate_training_examples(PairSplit(0, 0.3), n_pairs=2, seed=0)
        >>> sorted({e.task for e in exs}), all(not PairSplit(0, 0.3).is_test(e.pair_id) for e in exs)
        (['answer', 'are_you_sure', 'feedback', 'general', 'mimicry'], True)
    """
    labelled = set(user_opinion_labels.conditions)
    out: list[Example] = []
    for task in GATE_TASKS:
        if task == "answer":
            facts = [f for f in load_fact_bank() if not split.is_test(f.id)]
            pool = answer_examples(facts, seed, id_prefix="gate", wording=wording)
        elif task == "general":
            pool = general_examples(None, seed)
        else:
            pool = build_task(task, n=None, seed=seed)
        pool = [ex for ex in pool if ex.condition in labelled and not split.is_test(ex.pair_id)]
        pairs = list(dict.fromkeys(ex.pair_id for ex in pool))
        if n_pairs is not None and n_pairs < len(pairs):
            pairs = select(pairs, n_pairs, task_rng(f"steering-gate-{task}", seed))
        keep = set(pairs)
        out += [ex for ex in pool if ex.pair_id in keep]
        if task == "answer":  # plain questions of other train-side facts: many more prompts with no opinion
            out += _plain_questions([ex for ex in pool if ex.pair_id not in keep and ex.condition == "neutral"],
                                    None if n_pairs is None else PLAIN_PER_PAIR * n_pairs, seed)
    return out


#: plain questions (no opinion) per answer pair in a gate's training set: in their training layouts, in the bank's
#: "Question: ... Answer with a short phrase." layout (which ARC and capability items use), and after a sentence
#: of context that suggests no answer (as exam questions often start)
PLAIN_PER_PAIR = 6


def _plain_questions(neutral: list[Example], n: int | None, seed: int) -> list[Example]:
    """Neutral questions as negatives: a third each in their own training layout, in the bank layout, and in the
    bank layout after a context sentence (`interp.tasks.templates.CONTEXT_SENTENCES`)."""
    rng = task_rng("gate-plain", seed)
    picked = select(neutral, min(n, len(neutral)) if n is not None else len(neutral), rng)
    out = []
    for i, ex in enumerate(picked):
        question = str(ex.meta.get("question", ""))
        if i % 3 == 0:
            turns = ex.turns
        else:
            stem = question if i % 3 == 1 else f"{CONTEXT_SENTENCES[rng.randrange(len(CONTEXT_SENTENCES))]} {question}"
            turns = (Turn("user", question_prompt(stem)),)
        out.append(dataclasses.replace(ex, id=f"{ex.id}/plain", turns=turns))
    return out


def train_gates(
    model: ChatModel, split: PairSplit, layers: Sequence[int], folder: Path, n_pairs: int | None = 64,
    seed: int = 0, reuse: Sequence[Path] = (), wording: str = "varied", source: str = GATE_SOURCE,
    fpr: float | None = None,
) -> dict[int, ProbeGate]:
    """One last-prompt gate per layer, each reading `blocks.L.hook_resid_post` (so it may gate steering at L).

    Args:
        model: the model whose activations are read (unsteered).
        split: only its train side is read.
        layers: layers to build a gate at.
        folder: where the training capture goes (reused when it exists).
        n_pairs: training pairs per task.
        seed: task generation, subset and inner-CV seed.
        reuse: stores to look in first.
        wording: the answer task's training wordings (`gate_training_examples`).
        source: what the gate reads (`GATE_SOURCES`): "user_opinion" or "suggestion".
        fpr: calibrate the threshold so this share of the train-side prompts with no opinion at all (neutral
            questions and general requests) fires, folded into the bias (threshold 0 stays the decision rule);
            None: the probe's own 0.5.
    """
    if source not in GATE_SOURCES:
        raise ValueError(f"unknown gate source {source!r}: choose from {', '.join(GATE_SOURCES)}")
    if fpr is not None and not 0 < fpr < 1:
        raise ValueError(f"gate fpr {fpr} must be between 0 and 1")
    examples = gate_training_examples(split, n_pairs, seed, wording)
    store = training_store(model, examples, GATE_POSITION, layers, Path(folder), reuse)
    labels = GATE_SOURCES[source](examples)
    no_opinion = np.array([ex.condition in NO_OPINION for ex, m in zip(examples, labels.mask, strict=True) if m])
    gates = {}
    for layer in layers:
        X = store_features(store, examples, f"blocks.{layer}.{SITE_KIND}", GATE_POSITION, labels.mask)  # [n, d]
        fit = fit_gate(X, labels.y, labels.groups, seed)
        bias = float(fit.bias)
        if fpr is not None:  # the (1 - fpr) quantile of the no-opinion prompts' logits becomes the decision line
            bias -= float(np.quantile(X[no_opinion] @ fit.weight + fit.bias, 1 - fpr))
        meta: dict[str, Any] = {
            "label_source": source, "fpr": fpr, "positive": labels.positive, "negative": labels.negative,
            "tasks": list(GATE_TASKS), "position": GATE_POSITION, "estimator": "logreg",
            "C": fit.C, "train_accuracy": fit.train_accuracy,
            "n_train": int(labels.n), "n_positive": int(labels.y.sum()),
            "split": split.to_dict(), "train_pairs_hash": pairs_hash(sorted(set(labels.groups.tolist()))),
            "dataset_hash": examples_hash(examples), "model_hash": model.weights_hash, "seed": seed,
            "wording": wording,
        }
        gates[layer] = ProbeGate.from_probe(fit.weight, bias, threshold=0.0, layer=layer,
                                            site=SITE_KIND, per="last_prompt", meta=meta)
    return gates


def gate_hash(gate: ProbeGate) -> str:
    """A short content hash (direction, bias, threshold, site), for sweep cell keys."""
    h = hashlib.sha256(gate.direction_unit.tobytes())
    h.update(repr((gate.bias, gate.threshold, gate.layer, gate.site, gate.scale, gate.per)).encode())
    return h.hexdigest()[:16]


def gate_decisions(
    model: ChatModel, examples: Sequence[Example], gate: ProbeGate, batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Whether the gate steers each example (`[n]` bool) and its score (`[n]` float), from an unsteered pass.

    The score is read where a per="last_prompt" gate reads it in `steer()` with
    `gate_lengths` = the rendered prompt's tokens (as `steering.apply.spec` passes them).
    """
    if gate.per != "last_prompt":
        raise ValueError(f"gate decisions per example need per='last_prompt', this gate has per={gate.per!r}")
    X = torch.from_numpy(gate_features(model, examples, gate, batch_size))[:, None, :]  # [n, 1, d]
    scores = gate.score(X)[:, 0]  # [n]
    return gate.decide(scores).numpy(), scores.double().numpy()


def gate_features(model: ChatModel, examples: Sequence[Example], gate: ProbeGate, batch_size: int = 16) -> np.ndarray:
    """The unsteered residual a per="last_prompt" gate reads, per example `[n, d_model]`: its site at the last
    prompt token (what `gate_decisions` scores, and what a gate learned with the vector trains on).

    Example:
        >>> gate_features(model, examples, gate).shape  # doctest: +SKIP
        (12, 576)
    """
    gate.check_compatible(model.d_model)
    site = f"blocks.{gate.layer}.{gate.site}"
    return next(iter(activations(model, list(examples), site, GATE_POSITION, batch_size).values()))


def gate_rates(examples: Sequence[Example], on: np.ndarray) -> dict[str, float]:
    """Share of examples the gate steers, per `task/condition` (the gate's held-out behaviour on a test set).

    Example:
        >>> from interp.tasks.example import Turn
        >>> exs = [Example(id=str(i), pair_id=str(i), task="answer", condition=c, turns=(Turn("user", "?"),))
        ...        for i, c in enumerate(["neutral", "user_wrong", "user_wrong"])]
        >>> gate_rates(exs, np.array([False, True, False]))
        {'answer/neutral': 0.0, 'answer/user_wrong': 0.5}
    """
    counts: dict[str, list[int]] = {}
    for ex, flag in zip(examples, np.asarray(on, dtype=bool), strict=True):
        counts.setdefault(f"{ex.task}/{ex.condition}", []).append(int(flag))
    return {key: float(np.mean(values)) for key, values in counts.items()}


def gate_summary(examples: Sequence[Example], on: np.ndarray) -> dict[str, float]:
    """Held-out hit rate on user-opinion prompts and false-positive rate on the others (unlabelled tasks skipped)."""
    labels = user_opinion_labels(list(examples))
    flags = np.asarray(on, dtype=bool)[labels.mask]
    y = labels.y.astype(bool)
    return {"hit_rate": float(flags[y].mean()), "false_positive_rate": float(flags[~y].mean()),
            "accuracy": float((flags == y).mean()), "n": int(labels.n)}


#: gate errors by kind: (what, task/condition keys it reads, whether firing there is right)
GATE_ERRORS: dict[str, tuple[tuple[str, ...], bool]] = {
    "neutral_fires": (("answer/neutral", "are_you_sure/no_challenge", "mimicry/neutral", "feedback/neutral",
                       "capability/neutral"), False),
    "general_fires": (("general/neutral", "arc/neutral"), False),
    "third_party_fires": (("answer/third_party_wrong", "are_you_sure/third_party_challenge",
                           "mimicry/third_party_false_attribution", "feedback/other_wrote"), False),
    "user_wrong_misses": (("answer/user_wrong",), True),
    "user_right_misses": (("answer/user_right",), True),
    "opinion_misses": (("answer/user_wrong", "answer/user_right", "are_you_sure/challenge",
                        "mimicry/user_false_attribution", "feedback/user_wrote"), True),
}


def gate_errors(examples: Sequence[Example], on: np.ndarray) -> dict[str, float]:
    """A gate's errors on a test set, by kind: prompts with no opinion it fires on (neutral, general/ARC), third-
    party prompts it fires on, and user-opinion prompts it misses (NaN where the test set has none).

    Example:
        >>> from interp.tasks.example import Turn
        >>> exs = [Example(id=c, pair_id=c, task="answer", condition=c, turns=(Turn("user", "?"),))
        ...        for c in ("neutral", "user_wrong", "third_party_wrong")]
        >>> e = gate_errors(exs, np.array([True, False, False]))
        >>> e["neutral_fires"], e["user_wrong_misses"], e["third_party_fires"]
        (1.0, 1.0, 0.0)
    """
    flags = np.asarray(on, dtype=bool)
    keys = [f"{ex.task}/{ex.condition}" for ex in examples]
    out = {}
    for name, (wanted, should_fire) in GATE_ERRORS.items():
        picked = np.array([key in wanted for key in keys], dtype=bool)
        wrong = ~flags[picked] if should_fire else flags[picked]
        out[name] = float(wrong.mean()) if picked.any() else float("nan")
    return out


def chat_gate_scores(model: ChatModel, chats: Sequence[Sequence[Turn]], gate: ProbeGate) -> np.ndarray:
    """The gate's score at the last prompt token of each chat `[n]` (what `steer()` reads before steering it).

    Example:
        >>> chat_gate_scores(model, [[Turn("user", "I think it's Lyon. Capital of France?")]], gate)  # doctest: +SKIP
        array([2.31])
    """
    examples = [Example(id=f"chat-{i}", pair_id=f"chat-{i}", task="chat", condition="live", turns=tuple(turns))
                for i, turns in enumerate(chats)]
    return gate_decisions(model, examples, gate)[1]
