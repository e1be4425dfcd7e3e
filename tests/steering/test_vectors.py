"""steering.evaluation.splits and steering.methods.statistics: grouped disjoint splits, vectors per method with provenance, CAA by hand."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from interp.capture.collect import capture
from interp.capture.positions import encode_example
from interp.tasks import build_task
from probes.splits import GroupLeakError
from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.splits import PairSplit, check_disjoint, pairs_hash
from steering.evaluation.testset import TestSetConfig, build_test_set
from steering.methods.registry import BuildRequest, load_or_build_method_vector
from steering.methods.registry import resolve_method as registry_method
from steering.methods.statistics import (
    VECTOR_METHODS,
    build_vector,
    resolve_method,
    shared_stores,
    training_examples,
    training_store,
)

SPLIT = PairSplit(seed=0, test_fraction=0.3)


def test_split_is_grouped_by_pair_and_disjoint():
    examples = build_task("answer", n=60, seed=0) + build_task("caa", n=60, seed=0)
    train, test = SPLIT.examples(examples, "train"), SPLIT.examples(examples, "test")
    train_pairs, test_pairs = {e.pair_id for e in train}, {e.pair_id for e in test}
    assert train_pairs and test_pairs and not train_pairs & test_pairs
    assert len(train) + len(test) == len(examples)
    # every variant of a question (all conditions, all tasks) lands on one side
    for pair in test_pairs:
        assert all(SPLIT.is_test(e.pair_id) for e in examples if e.pair_id == pair)
    # the side depends on the id and the seed only, not on the set it came in
    alone, mixed = SPLIT.partition(["capitals-001"]), SPLIT.partition(["x", "capitals-001", "y"])
    assert ("capitals-001" in alone[1]) == ("capitals-001" in mixed[1])
    other = PairSplit(seed=1, test_fraction=0.3)
    assert [SPLIT.side(p) for p in sorted(train_pairs | test_pairs)] != [other.side(p) for p in
                                                                          sorted(train_pairs | test_pairs)]
    check_disjoint(train_pairs, test_pairs)
    with pytest.raises(GroupLeakError, match="1 pair id"):
        check_disjoint(train_pairs, {next(iter(train_pairs))})
    with pytest.raises(ValueError, match="test_fraction"):
        PairSplit(0, 1.0)
    assert PairSplit.from_dict(SPLIT.to_dict()) == SPLIT


@pytest.mark.parametrize("method", ["caa", "opinion_minus_neutral", "user_minus_third_party"])
def test_training_examples_never_touch_the_test_set(method):
    train = training_examples(VECTOR_METHODS[method], SPLIT, n_pairs=40, seed=0)
    test = build_test_set(TestSetConfig(n_answer=30, n_are_you_sure=10, n_capability=10), SPLIT)
    assert len({e.pair_id for e in train}) == 40
    assert not {e.pair_id for e in train} & test.pair_ids
    check_disjoint({e.pair_id for e in train}, test.pair_ids)
    data = VECTOR_METHODS[method].data
    assert {e.condition for e in train} == {data.positive, data.negative} and {e.task for e in train} == {data.task}
    if method == "caa":  # balanced over the sycophantic letter, so the letter's identity cancels
        letters = [e.sycophantic for e in train if e.condition == "sycophantic"]
        assert letters.count(0) == letters.count(1) == 20


def test_resolve_method_registry():
    assert resolve_method("caa").label_source == "contrast"
    assert resolve_method("pca_diff").name == "pca_diff:user_vs_third_party"
    assert resolve_method("logreg:pressure").estimator == "logreg"
    with pytest.raises(ValueError, match="unknown vector method"):
        resolve_method("svm")
    with pytest.raises(ValueError, match="label source"):
        resolve_method("lda:nope")


@pytest.mark.parametrize("method", ["caa", "opinion_minus_neutral", "user_minus_third_party", "logreg", "mean_diff",
                                    "lda", "pca_diff:contrast"])
def test_vector_per_method_has_shape_and_provenance(tiny_model, tmp_path_factory, method):
    folder = tmp_path_factory.getbasetemp() / "vector-stores"  # shared: one capture per label source
    v = build_vector(tiny_model, method, SPLIT, [1, 3], folder, n_pairs=6, seed=0)
    assert v.layers == [1, 3] and all(d.shape == (tiny_model.d_model,) for d in v.directions.values())
    assert v.method == resolve_method(method).name and v.site_kind == "hook_resid_post"
    assert v.model_hash == tiny_model.weights_hash and len(v.dataset_hash) == 64
    assert set(v.resid_norms) == {1, 3} and all(n > 0 for n in v.resid_norms.values())
    assert all(n > 0 for n in v.norms().values())
    assert v.meta["split"] == SPLIT.to_dict() and v.meta["n_train_pairs"] == 6
    train = training_examples(resolve_method(method), SPLIT, 6, 0)
    assert v.meta["train_pairs_hash"] == pairs_hash(e.pair_id for e in train)
    assert v.meta["scale"]


def test_caa_vector_equals_hand_computed_mean_difference(tiny_model, tmp_path):
    v = build_vector(tiny_model, "caa", SPLIT, [0, 2], tmp_path, n_pairs=5, seed=0)
    examples = training_examples(VECTOR_METHODS["caa"], SPLIT, 5, 0)
    by_layer: dict[int, dict[str, list[np.ndarray]]] = {0: {}, 2: {}}
    norms: dict[int, list[float]] = {0: [], 2: []}
    for ex in examples:
        ids = torch.tensor([encode_example(tiny_model, ex).ids])
        with torch.no_grad():
            hidden = tiny_model.hf(input_ids=ids, output_hidden_states=True).hidden_states
        for layer in (0, 2):
            h = hidden[layer + 1][0, -1].numpy()  # resid_post of layer L at the answer letter
            by_layer[layer].setdefault(ex.condition, []).append(h)
            norms[layer].append(float(np.linalg.norm(h)))
    for layer in (0, 2):
        expected = np.mean(by_layer[layer]["sycophantic"], 0) - np.mean(by_layer[layer]["honest"], 0)
        np.testing.assert_allclose(v.directions[layer], expected, atol=2e-5, rtol=1e-4)
        assert v.resid_norms[layer] == pytest.approx(np.mean(norms[layer]), rel=1e-4)


def test_probe_vectors_are_scaled_by_the_class_separation(tiny_model, tmp_path):
    means = build_vector(tiny_model, "user_minus_third_party", SPLIT, [2], tmp_path, n_pairs=6)
    probe = build_vector(tiny_model, "mean_diff:user_vs_third_party", SPLIT, [2], tmp_path, n_pairs=6)
    # the mean_diff probe's direction_ is exactly the means difference: strengths compare across methods
    np.testing.assert_allclose(probe.directions[2], means.directions[2], rtol=1e-4, atol=1e-6)


def test_store_is_reused_and_saved_vector_is_loaded(tiny_model, tmp_path):
    examples = training_examples(VECTOR_METHODS["caa"], SPLIT, 4, 0)
    existing = capture(tiny_model, examples, "blocks.*.hook_resid_post", ["answer", "last_prompt"], tmp_path / "run")
    store = training_store(tiny_model, examples, "answer", [1], tmp_path / "fresh", reuse=[tmp_path / "run"])
    assert store.path == existing.path and not (tmp_path / "fresh").exists()
    other = training_store(tiny_model, examples[:2], "answer", [1], tmp_path / "fresh", reuse=[tmp_path / "missing"])
    assert other.path.parent == tmp_path / "fresh"
    path = tmp_path / "v.safetensors"
    caa = registry_method("caa")

    def request(split: PairSplit) -> BuildRequest:
        return BuildRequest(tiny_model, split, (1,), tmp_path / "acts", 4, 0)

    first = load_or_build_method_vector(path, caa, request(SPLIT))
    assert path.is_file() and SteeringVector.load(path) == first
    stamp = path.stat().st_mtime_ns
    again = load_or_build_method_vector(path, caa, request(SPLIT))
    assert again == first and path.stat().st_mtime_ns == stamp
    rebuilt = load_or_build_method_vector(path, caa, request(replace(SPLIT, seed=5)))
    assert rebuilt.meta["split"]["seed"] == 5 and path.stat().st_mtime_ns != stamp


def test_methods_on_one_task_share_one_capture(tiny_model, tmp_path):
    methods = ["opinion_minus_neutral", "user_minus_third_party", "lda:pressure"]
    paths = shared_stores(tiny_model, methods, SPLIT, [1], tmp_path / "acts", 5, 0)
    assert len(paths) == 1  # the answer task at last_prompt
    vectors = [build_vector(tiny_model, m, SPLIT, [1], tmp_path / "fresh", 5, 0, reuse=paths) for m in methods]
    assert {v.meta["store"] for v in vectors} == {str(paths[0])} and not (tmp_path / "fresh").exists()
    # same training pairs for every method on the task
    assert len({v.meta["train_pairs_hash"] for v in vectors}) == 1
