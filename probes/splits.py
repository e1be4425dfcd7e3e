"""Cross-validation folds grouped by `pair_id`, so no question leaks across a split.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 1] * 6); g = np.repeat(np.arange(6), 2)
    >>> folds = grouped_folds(y, g, n_splits=3, seed=0)
    >>> len(folds)
    3
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

Fold = tuple[np.ndarray, np.ndarray]  # (train indices, test indices)


class GroupLeakError(ValueError, AssertionError):
    """A group (pair id) has rows on both sides of a split: the one leak error of the workbench.

    Raised by `check_no_leak` (probe CV folds) and `steering.evaluation.splits.check_disjoint` (sweep train/test).
    A ValueError (bad input) and, for the probe checks written as assertions, an AssertionError.
    """


def check_no_leak(groups: np.ndarray, train: np.ndarray, test: np.ndarray) -> None:
    """Raise GroupLeakError if any group has rows in both `train` and `test`.

    Args:
        groups: [n] group label of every row.
        train: indices of the training rows.
        test: indices of the test rows.

    Example:
        >>> check_no_leak(np.array(["a", "a", "b"]), np.array([0, 1]), np.array([2]))
    """
    groups = np.asarray(groups)
    shared = np.intersect1d(groups[train], groups[test])
    if shared.size:
        raise GroupLeakError(f"{shared.size} group(s) on both sides of a split, e.g. {shared[:3].tolist()}")


def grouped_folds(
    y: np.ndarray,
    groups: np.ndarray | None,
    n_splits: int = 5,
    seed: int = 0,
    stratify: bool = True,
) -> list[Fold]:
    """(Stratified) K-fold over whole groups, checked for leaks.

    Uses scikit-learn's StratifiedGroupKFold, or GroupKFold with
    `stratify=False` (ten times faster, used by logreg's inner CV); both
    shuffled with `seed`; asks for at most as many folds as there are groups.

    Args:
        y: [n] class labels (stratification target).
        groups: [n] group labels (pair ids); None makes every row its own group.
        n_splits: folds wanted.
        seed: shuffling seed.
        stratify: balance the classes across folds.

    Returns:
        A list of (train, test) index arrays; every row is in exactly one test set.

    Raises:
        ValueError: with fewer than two groups.

    Example:
        >>> y = np.array([0, 1, 0, 1]); g = np.array(["p", "p", "q", "q"])
        >>> [len(te) for _, te in grouped_folds(y, g, n_splits=2)]
        [2, 2]
    """
    y = np.asarray(y)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    if len(groups) != len(y):
        raise ValueError(f"groups has {len(groups)} rows but y has {len(y)}")
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(f"grouped cross-validation needs at least 2 groups, got {n_groups}")
    k = min(n_splits, n_groups)
    splitter: StratifiedGroupKFold | GroupKFold = (
        StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        if stratify
        else GroupKFold(n_splits=k, shuffle=True, random_state=seed)
    )
    with warnings.catch_warnings():
        # a class rarer than k is still split; the pooled metrics handle it
        warnings.filterwarnings("ignore", message="The least populated class")
        folds = [(np.asarray(tr), np.asarray(te)) for tr, te in splitter.split(np.zeros(len(y)), y, groups)]
    folds = [(tr, te) for tr, te in folds if len(te) and len(tr)]
    for tr, te in folds:
        check_no_leak(groups, tr, te)
    return folds


def fold_of_group(groups: np.ndarray, folds: list[Fold]) -> dict[str, int]:
    """Map every group to the index of the fold that tests it (JSON-friendly).

    Example:
        >>> fold_of_group(np.array(["a", "b"]), [(np.array([1]), np.array([0])), (np.array([0]), np.array([1]))])
        {'a': 0, 'b': 1}
    """
    groups = np.asarray(groups)
    out: dict[str, int] = {}
    for i, (_, te) in enumerate(folds):
        for g in np.unique(groups[te]).tolist():
            out[str(g)] = i
    return out
