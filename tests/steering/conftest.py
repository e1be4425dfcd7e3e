"""Fixtures shared by the steering tests: the small held-out test set and a seeded random vector on every layer."""

from __future__ import annotations

import pytest

from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.splits import PairSplit
from steering.evaluation.testset import TestSet, build_test_set
from tests.steering.builders import SMALL_TEST, random_vector


@pytest.fixture(scope="module")
def held_out() -> TestSet:
    return build_test_set(SMALL_TEST, PairSplit(0, 0.3))


@pytest.fixture(scope="module")
def vector(tiny_model) -> SteeringVector:  # type: ignore[no-untyped-def]
    return random_vector(tiny_model, layers=tuple(range(tiny_model.n_layers)))
