"""Builders for the steering tests: seeded random vectors, the small test set, a tiny model with tied embeddings,
and `reference_strengths` (`score_strengths` through the plain reference scorer)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from interp.scoring.reference import next_token_logprobs, score_choices
from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.evaluate import CellScores, prompt_tokens, replica_context, split_cells
from steering.evaluation.testset import TestSetConfig

#: the small held-out set the evaluation and gating tests score (every task, a few items each)
SMALL_TEST = TestSetConfig(n_answer=3, n_are_you_sure=1, n_mimicry=1, n_feedback=1, n_capability=2, n_general=4)


def random_vector(model, layers: tuple[int, ...] = (1, 2), seed: int = 0, positions: str = "all",  # type: ignore[no-untyped-def]
                  scale: float = 1.0) -> SteeringVector:
    """A seeded random vector for `model` with full provenance."""
    rng = np.random.default_rng(seed)
    return SteeringVector(
        {layer: (scale * rng.normal(size=model.d_model)).astype(np.float32) for layer in layers},
        method="random", d_model=model.d_model, model_hash=model.weights_hash, arch=model.arch,
        dataset_hash="d" * 64, resid_norms={layer: 3.5 for layer in layers}, positions=positions,
        meta={"note": "test"},
    )


def reference_strengths(model, test, spec, strengths, batch_size: int = 16) -> list[CellScores]:  # type: ignore[no-untyped-def]
    """`steering.evaluation.evaluate.score_strengths` computed the plain way, the reference the scorer is compared with.

    The same replicated rows and per-row steering (`replica_context`) and the same split into cells
    (`split_cells`), but scored by `interp.scoring.reference`: one full sequence per choice, and a
    separate right-padded pass for the next-token distributions.
    """
    examples = list(test.examples)
    n, k = len(examples), len(strengths)
    context = replica_context(model, spec, strengths, n, prompt_tokens(model, examples))
    next_of = [r * n + i for r in range(k) for i in test.next_index]
    table = score_choices(model, examples * k, batch_size=batch_size, row_context=context)
    sub = None if context is None else (lambda rows: context([next_of[r] for r in rows]))
    logprobs = next_token_logprobs(model, [(examples * k)[i] for i in next_of], batch_size, sub)
    return split_cells(test, strengths, table, logprobs)


def score_numbers(rows) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The per-example scores two evaluations must agree on `[n, 4]` (margin, rating, correct, chose_pushed)."""
    return rows[["margin", "rating", "correct", "chose_pushed"]].to_numpy(dtype=float)


def tie_free_threshold(scores: np.ndarray, min_gap: float = 1e-4) -> float:
    """A threshold halfway across the widest gap between sorted scores near the middle, never on a score.

    Two code paths (the batch gate and the live gate inside steer()) compute the scores in different batch layouts,
    so they agree only to ~1e-7: a threshold on or near a score would test float noise, not the decision. A gap
    of 1e-4 leaves every score 1000x the noise away from the threshold.
    """
    ordered = np.sort(scores)
    n = len(ordered)
    middle = range(max(1, n // 4), min(n, 3 * n // 4 + 1))  # keep both sides populated
    i = max(middle, key=lambda k: ordered[k] - ordered[k - 1])
    gap = ordered[i] - ordered[i - 1]
    assert gap > min_gap, f"no clear gap between the middle scores (widest {gap:.2e})"
    return float((ordered[i] + ordered[i - 1]) / 2)


def build_tied_model(untied_dir: Path, folder: Path) -> Path:
    """The tiny Llama of `untied_dir` rebuilt with tie_word_embeddings=True (same tokenizer)."""
    from transformers import AutoConfig, LlamaForCausalLM

    shutil.copytree(untied_dir, folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    config = AutoConfig.from_pretrained(untied_dir)
    config.tie_word_embeddings = True
    torch.manual_seed(1)
    model = LlamaForCausalLM(config).eval()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    model.save_pretrained(folder)
    return folder
