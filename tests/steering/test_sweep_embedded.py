"""On the embedded SmolLM2: the scorer equals the plain reference (interp.scoring.reference) on the real tokenizer,
and CAA letters balance out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.store.activations import ActivationStore
from steering.apply.spec import SteerSpec
from steering.evaluation.evaluate import freeze, score_strengths
from steering.evaluation.splits import PairSplit
from steering.evaluation.testset import TestSet, TestSetConfig, build_test_set
from steering.methods.statistics import VECTOR_METHODS, build_vector, training_examples
from tests.steering.builders import reference_strengths

pytestmark = pytest.mark.embedded
SPLIT = PairSplit(0, 0.3)


def test_frozen_scorer_equals_interp_score_on_smollm2(embedded_model):
    full = build_test_set(TestSetConfig(n_answer=2, n_are_you_sure=1, n_mimicry=1, n_feedback=1, n_capability=1, n_general=2),
                          SPLIT)
    # one example of each (task, condition) kind keeps it to a few seconds
    keep = [i for i, ex in enumerate(full.examples) if ex.pair_id in {e.pair_id for e in full.examples[:1]}
            or ex.task != "answer"]
    examples = tuple(full.examples[i] for i in keep)
    test = TestSet(examples, tuple(i for i, ex in enumerate(examples) if ex.condition in ("neutral", "no_challenge")),
                   ())
    rng = np.random.default_rng(0)
    v = rng.normal(size=embedded_model.d_model).astype(np.float32)
    from steering.artifacts.steering_vector import SteeringVector

    vector = SteeringVector({10: 4 * v / np.linalg.norm(v)}, method="random", d_model=embedded_model.d_model,
                            model_hash=embedded_model.weights_hash)
    spec = SteerSpec(vector, (10,), "generated")
    reference = reference_strengths(embedded_model, test, spec, [8.0])[0]
    fast = score_strengths(embedded_model, test, spec, [8.0], frozen=freeze(embedded_model, test))[0]
    cols = ["margin", "rating", "correct"]
    np.testing.assert_allclose(reference.rows[cols].to_numpy(float), fast.rows[cols].to_numpy(float), atol=2e-3,
                               equal_nan=True)
    torch.testing.assert_close(reference.next_logprobs, fast.next_logprobs, atol=2e-3, rtol=1e-3)
    # mimicry choices are scored as " Name" (a word boundary), not glued to "... invented by"
    assert all(c.startswith(" ") for ex in examples if ex.task == "mimicry" for c in ex.choices)


def test_caa_vector_is_not_the_letter_direction(embedded_model, tmp_path):
    v = build_vector(embedded_model, "caa", SPLIT, [10], tmp_path, n_pairs=8)
    examples = training_examples(VECTOR_METHODS["caa"], SPLIT, 8, 0)
    assert sorted(e.sycophantic for e in examples if e.condition == "honest") == [0] * 4 + [1] * 4
    store = ActivationStore(v.meta["store"])
    X = store.get("blocks.10.hook_resid_post", "answer")
    letter = np.array([ex.answer[-1] for ex in store.examples])
    letter_direction = X[letter == "A"].mean(0) - X[letter == "B"].mean(0)
    # balanced pairs: the answer letter's identity (norm ~100 at layer 10) cancels out of the CAA difference
    assert v.norms()[10] < 0.1 * np.linalg.norm(letter_direction)
