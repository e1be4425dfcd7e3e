"""Linear probes with the scikit-learn estimator API, and their registry.

Every probe is binary, takes arrays (never a model), and after `fit` exposes:

- `coef_` [d] and `intercept_`: the decision function `X @ coef_ + intercept_`
  in raw activation space (positive means the positive class, `classes_[1]`);
- `direction_` [d]: the probe's axis in activation units, namely the part of
  the class-mean difference that lies along `coef_` (for `mean_diff` this is
  exactly mean(positive) - mean(negative)); its norm is the class separation;
- `class_means_`, `class_stds_` [2]: mean and std of the training projections
  on the unit axis, (negative, positive).

Methods, by registry name (`PROBES`):

- `logreg`: standardised L2 logistic regression, C chosen by inner grouped CV
  (held-out log-loss), the weights mapped back to raw units (w / scale).
- `mean_diff`: difference of class means (mass-mean probe), threshold at the
  midpoint of the two class means along it.
- `lda`: LDA with Ledoit-Wolf shrinkage (scikit-learn's lsqr/auto estimator, see probes.lda).
- `pca_diff`: RepE / repeng reading vector: within each group, mean of the
  positives minus mean of the negatives; the first principal component of those
  differences, *uncentred* by default (centring would remove the shared mean
  difference, which is the signal); sign chosen so positives project higher.

`mean_diff` and `pca_diff` score with a one-dimensional Gaussian model along
their axis (pooled variance, equal priors), so the threshold is the midpoint and
`predict_proba` is roughly calibrated.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 8)); y = np.repeat([0, 1], 50); X[y == 1, 0] += 3
    >>> probe = make_probe("mean_diff").fit(X, y)
    >>> bool(probe.direction_[0] > 2)
    True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.linalg import eigh
from scipy.sparse import csr_matrix
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from probes.lda import shrinkage_lda
from probes.logistic import fit_logistic_batch, principal_basis
from probes.splits import grouped_folds

DEFAULT_CS: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # on standardised features


class ProbeNotApplicable(ValueError):
    """The method cannot be fitted on these labels (e.g. pca_diff without paired groups)."""


def _check_xy(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D [n, d], got shape {X.shape}")
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"y must be 1-D with {len(X)} rows, got shape {y.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X holds NaN or infinite values")
    classes = np.unique(y)
    if len(classes) != 2:
        raise ValueError(f"a probe needs exactly two classes, got {len(classes)}: {classes[:5].tolist()}")
    return X, (y == classes[1]).astype(np.float64), classes


def _top_singular_vector(A: np.ndarray) -> np.ndarray:
    """First right singular vector of A [m, d], from the smaller Gram matrix."""
    m, d = A.shape
    if m >= d:
        _, vec = eigh(A.T @ A, subset_by_index=[d - 1, d - 1])  # [d, 1]
        return vec[:, 0]
    _, u = eigh(A @ A.T, subset_by_index=[m - 1, m - 1])  # [m, 1]
    v = A.T @ u[:, 0]
    return v / np.linalg.norm(v)


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Shared scoring for the linear probes; subclasses implement `fit`."""

    coef_: np.ndarray
    intercept_: float
    classes_: np.ndarray

    def _finish(self, X: np.ndarray, y01: np.ndarray, classes: np.ndarray, coef: np.ndarray, intercept: float) -> None:
        norm = float(np.linalg.norm(coef))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError("the fitted direction is zero or not finite")
        unit = coef / norm  # [d]
        proj = X @ unit  # [n]
        pos, neg = proj[y01 == 1], proj[y01 == 0]
        self.classes_ = classes
        self.coef_ = coef
        self.intercept_ = float(intercept)
        self.n_features_in_ = X.shape[1]
        self.class_means_ = np.array([neg.mean(), pos.mean()])  # [2]
        self.class_stds_ = np.array([neg.std(), pos.std()])  # [2]
        self.direction_ = unit * (self.class_means_[1] - self.class_means_[0])  # [d]

    def _fit_1d(self, X: np.ndarray, y01: np.ndarray, classes: np.ndarray, axis: np.ndarray) -> None:
        """Score along `axis` with a 1-D equal-prior Gaussian model (threshold at the midpoint)."""
        unit = axis / np.linalg.norm(axis)
        proj = X @ unit  # [n]
        m0, m1 = proj[y01 == 0].mean(), proj[y01 == 1].mean()
        if m1 < m0:
            unit, m0, m1 = -unit, -m0, -m1
            proj = -proj
        resid = proj - np.where(y01 == 1, m1, m0)
        var = max(float(resid.var()), 1e-12 * max(1.0, m1 * m1 + m0 * m0))
        slope = (m1 - m0) / var
        coef = unit * slope if slope > 0 else unit * 1e-12
        self._finish(X, y01, classes, coef, -slope * (m0 + m1) / 2)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Log-odds of the positive class, [n]."""
        check_is_fitted(self, "coef_")
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """[n, 2] probabilities of (classes_[0], classes_[1])."""
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """[n] predicted class labels."""
        return self.classes_[(self.decision_function(X) > 0).astype(int)]


class LogRegProbe(LinearProbe):
    """Standardised L2 logistic regression with C chosen by inner grouped CV.

    Args:
        Cs: candidate inverse regularisation strengths (on standardised features);
            a single value skips the inner CV.
        inner_folds: folds of the inner grouped CV.
        tol: solver tolerance on the mean gradient.
        max_iter: Newton steps at most.
        seed: seed of the inner fold assignment.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(120, 6)); y = (X[:, 1] > 0).astype(int)
        >>> probe = LogRegProbe().fit(X, y, groups=np.arange(120) // 2)
        >>> probe.C_ in DEFAULT_CS
        True
    """

    def __init__(
        self,
        Cs: tuple[float, ...] = DEFAULT_CS,
        inner_folds: int = 3,
        tol: float = 1e-4,
        max_iter: int = 50,
        seed: int = 0,
    ) -> None:
        self.Cs = Cs
        self.inner_folds = inner_folds
        self.tol = tol
        self.max_iter = max_iter
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> LogRegProbe:
        X, y01, classes = _check_xy(X, y)
        n = len(X)
        mean = X.mean(0)  # [d]
        scale = X.std(0)
        scale = np.where(scale > 1e-12 * max(1.0, float(scale.max())), scale, 1.0)  # [d]
        Z = (X - mean) / scale  # [n, d]
        basis = principal_basis(Z)  # [d, k]
        R1 = np.hstack([Z @ basis, np.ones((n, 1))])  # [n, k + 1]
        Cs = np.sort(np.asarray(self.Cs, dtype=np.float64))  # ascending: ties go to the stronger penalty
        folds = grouped_folds(y01, groups, self.inner_folds, self.seed, stratify=False) if len(Cs) > 1 else []
        masks = np.ones((n, len(folds) + 1))  # last column: all rows
        for i, (_, te) in enumerate(folds):
            masks[te, i] = 0.0
        col_masks = np.repeat(masks, len(Cs), axis=1)  # [n, (F + 1) * len(Cs)]
        penalty = np.tile(1.0 / Cs, len(folds) + 1)
        W = fit_logistic_batch(R1, y01, col_masks, penalty, self.tol, self.max_iter)  # [k + 1, m]
        losses = np.zeros(len(Cs))
        if folds:
            margins = R1 @ W  # [n, m]
            sign = 2.0 * y01 - 1.0
            for i, (_, te) in enumerate(folds):
                block = margins[te, i * len(Cs) : (i + 1) * len(Cs)]  # [n_te, len(Cs)]
                losses += np.logaddexp(0.0, -sign[te, None] * block).sum(0)
            losses /= n
        best = int(np.argmin(losses))  # first minimum: the strongest regularisation among ties
        col = len(folds) * len(Cs) + best
        w_std = basis @ W[:-1, col]  # [d]
        coef = w_std / scale
        self.C_ = float(Cs[best])
        self.cv_log_loss_ = losses  # [len(Cs)]
        self._finish(X, y01, classes, coef, float(W[-1, col] - mean @ coef))
        return self


class MeanDiffProbe(LinearProbe):
    """Difference of class means (mass-mean probe); no hyper-parameters.

    Example:
        >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [2.0, 1.0]])
        >>> MeanDiffProbe().fit(X, np.array([0, 0, 1, 1])).direction_.tolist()
        [2.0, 0.0]
    """

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> MeanDiffProbe:
        X, y01, classes = _check_xy(X, y)
        diff = X[y01 == 1].mean(0) - X[y01 == 0].mean(0)  # [d]
        if not np.linalg.norm(diff) > 0:
            raise ValueError("the two class means are identical")
        self.mean_diff_ = diff  # [d] the raw difference (direction_ re-expresses it on its unit axis)
        self._fit_1d(X, y01, classes, diff)
        return self


class LDAProbe(LinearProbe):
    """Linear discriminant analysis with Ledoit-Wolf covariance shrinkage.

    The estimator of scikit-learn's LinearDiscriminantAnalysis(solver="lsqr",
    shrinkage="auto"), computed by probes.lda (tested for parity).

    Args:
        shrinkage: "auto" (Ledoit-Wolf) or a float in [0, 1].

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(80, 4)); y = np.repeat([0, 1], 40); X[y == 1, 2] += 2
        >>> int(np.argmax(np.abs(LDAProbe().fit(X, y).coef_)))
        2
    """

    def __init__(self, shrinkage: str | float = "auto") -> None:
        self.shrinkage = shrinkage

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> LDAProbe:
        X, y01, classes = _check_xy(X, y)
        coef, intercept = shrinkage_lda(X, y01, self.shrinkage)
        self._finish(X, y01, classes, coef, intercept)
        return self


class PCADiffProbe(LinearProbe):
    """First principal component of within-group class differences (RepE reading vector).

    Needs `groups` (pair ids): each group with both classes contributes
    mean(positives) - mean(negatives); groups with one class are ignored.

    Args:
        center: subtract the mean difference before the PCA (repeng's choice);
            the default False keeps it, so identical differences still give their direction.

    Example:
        >>> X = np.array([[0.0, 0.0], [1.0, 0.1], [5.0, 5.0], [6.0, 5.0]])
        >>> p = PCADiffProbe().fit(X, np.array([0, 1, 0, 1]), groups=np.array([0, 0, 1, 1]))
        >>> bool(p.direction_[0] > 0.9)
        True
    """

    def __init__(self, center: bool = False) -> None:
        self.center = center

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> PCADiffProbe:
        X, y01, classes = _check_xy(X, y)
        if groups is None:
            raise ProbeNotApplicable("pca_diff needs groups (pair ids) to form within-pair differences")
        _, codes = np.unique(np.asarray(groups), return_inverse=True)
        n_groups = int(codes.max()) + 1
        pos_n = np.bincount(codes, weights=y01, minlength=n_groups)
        neg_n = np.bincount(codes, weights=1.0 - y01, minlength=n_groups)
        usable = (pos_n > 0) & (neg_n > 0)
        if usable.sum() < 2:
            raise ProbeNotApplicable(f"pca_diff needs at least 2 groups holding both classes, got {int(usable.sum())}")
        rows = np.arange(len(X))
        pos_sum = csr_matrix((y01, (codes, rows)), shape=(n_groups, len(X))) @ X  # [g, d]
        neg_sum = csr_matrix((1.0 - y01, (codes, rows)), shape=(n_groups, len(X))) @ X
        pos_mean = pos_sum / np.maximum(pos_n, 1)[:, None]
        neg_mean = neg_sum / np.maximum(neg_n, 1)[:, None]
        diffs = (pos_mean - neg_mean)[usable]  # [g_used, d]
        if self.center:
            diffs = diffs - diffs.mean(0)
        axis = _top_singular_vector(diffs)  # [d]; _fit_1d flips it so positives project higher
        self.n_pairs_ = int(usable.sum())
        self._fit_1d(X, y01, classes, axis)
        return self


ProbeFactory = Callable[[int], LinearProbe]

PROBES: dict[str, ProbeFactory] = {
    "logreg": lambda seed: LogRegProbe(seed=seed),
    "mean_diff": lambda seed: MeanDiffProbe(),
    "lda": lambda seed: LDAProbe(),
    "pca_diff": lambda seed: PCADiffProbe(),
}


def make_probe(name: str, seed: int = 0) -> LinearProbe:
    """A fresh, unfitted probe of the registered method `name`.

    Args:
        name: a key of PROBES.
        seed: passed to methods that shuffle (logreg's inner folds).

    Example:
        >>> type(make_probe("lda")).__name__
        'LDAProbe'
    """
    try:
        factory = PROBES[name]
    except KeyError:
        raise ValueError(f"unknown probe method {name!r}; known: {sorted(PROBES)}") from None
    return factory(seed)
