"""Fitting on labelled rows of an ActivationStore: the estimators steering vectors and gates are made of.

Steering picks the training examples and captures their activations; the fitting happens here, so
every estimator of the workbench lives in `probes` (`probes.estimators.PROBES`).

| function        | returns                                                                             |
| --------------- | ----------------------------------------------------------------------------------- |
| `store_features`| the rows of `examples` at one site and position `[n, d]` float64                     |
| `fit_direction` | a raw direction: `means` (difference of class means) or a probe's `direction_`       |
| `fit_gate`      | a logistic probe's weight and bias, its C and training accuracy (a `ProbeGate`'s data) |

Example:
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [2.0, 1.0]])
    >>> fit_direction("means", X, np.array([0, 0, 1, 1]), np.array(["a", "b", "a", "b"]), 0).tolist()
    [2.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from interp.store.activations import ActivationStore
from interp.tasks.example import Example
from probes.estimators import PROBES, MeanDiffProbe, make_probe

#: estimators a vector can be fitted with: `means` (the raw mean difference) and every probe
DIRECTION_ESTIMATORS = ("means", *PROBES)


def store_features(store: ActivationStore, examples: Sequence[Example], site: str, position: str,
                   mask: np.ndarray | None = None) -> np.ndarray:
    """The store's rows of `examples` (matched by id; `mask` keeps a subset) at `site`, `position` `[n, d]`."""
    index = {ex.id: i for i, ex in enumerate(store.examples)}
    rows = np.array([index[ex.id] for ex in examples])
    if mask is not None:
        rows = rows[mask]
    return store.get(site, position)[rows].astype(np.float64)  # [n, d]


def fit_direction(estimator: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """A raw direction `[d]` toward the positive class.

    Args:
        estimator: `means` (mean(positive) - mean(negative), residual units) or a key of PROBES
            (the probe's `direction_`: unit axis x class separation along it).
        X: features `[n, d]`; y: labels `[n]` in {0, 1}; groups: pair ids `[n]`; seed: for probes that shuffle.
    """
    if estimator == "means":
        return MeanDiffProbe().fit(X, y, groups).mean_diff_
    if estimator not in PROBES:
        raise ValueError(f"unknown estimator {estimator!r}; known: {', '.join(DIRECTION_ESTIMATORS)}")
    return np.asarray(make_probe(estimator, seed).fit(X, y, groups).direction_)


@dataclass(frozen=True, eq=False)
class GateFit:
    """A gate's logistic probe: `weight` `[d]`, `bias`, the chosen `C`, the training accuracy."""

    weight: np.ndarray
    bias: float
    C: float
    train_accuracy: float


def fit_gate(X: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int) -> GateFit:
    """Fit a gate's logistic probe (inner grouped CV over C) on `X` `[n, d]`, labels `y`, pair ids `groups`."""
    probe = make_probe("logreg", seed).fit(X, y, groups)
    train_acc = float(((X @ probe.coef_ + probe.intercept_ > 0) == y.astype(bool)).mean())
    return GateFit(probe.coef_, probe.intercept_, float(getattr(probe, "C_", float("nan"))), train_acc)
