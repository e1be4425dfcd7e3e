"""Held-out measurement: the pair split, the test set, and a steered model's scores on it.

| module     | holds                                                                        |
| ---------- | ---------------------------------------------------------------------------- |
| `splits`   | `PairSplit`: which pairs train a vector and which test it (disjoint by group) |
| `testset`  | `TestSet`, `build_test_set`: the held-out examples every cell is scored on    |
| `evaluate` | `score_strengths`: a steered model's scores, K strengths in one batched pass  |

Example:
    >>> from steering.evaluation import PairSplit
    >>> PairSplit(seed=0, test_fraction=0.3).seed
    0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.lazy_names import lazy_names

if TYPE_CHECKING:
    from steering.evaluation.evaluate import CellScores, score_strengths
    from steering.evaluation.splits import PairSplit
    from steering.evaluation.testset import TestSet, TestSetConfig, build_test_set

# loaded on first use: the split is read without importing torch
_LAZY = {
    **dict.fromkeys(("CellScores", "score_strengths"), "steering.evaluation.evaluate"),
    "PairSplit": "steering.evaluation.splits",
    **dict.fromkeys(("TestSet", "TestSetConfig", "build_test_set"), "steering.evaluation.testset"),
}

__all__ = ["CellScores", "PairSplit", "TestSet", "TestSetConfig", "build_test_set", "score_strengths"]


__getattr__ = lazy_names(__name__, _LAZY)
