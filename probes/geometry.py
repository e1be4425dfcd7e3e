"""Geometry of directions: cosine similarities, and projections of examples.

Example:
    >>> import numpy as np
    >>> round(float(cosine_table({"a": np.array([1.0, 0.0]), "b": np.array([1.0, 1.0])}).loc["a", "b"]), 3)
    0.707
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from interp.store.activations import ActivationStore
from probes.direction import Direction


def cosine_table(vectors: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Cosine similarity of every pair of vectors, as a labelled square DataFrame.

    Args:
        vectors: name -> [d] vector (all the same d).

    Example:
        >>> cosine_table({"x": np.array([1.0, 0.0]), "y": np.array([0.0, 2.0])}).values.tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    names = list(vectors)
    if not names:
        return pd.DataFrame()
    widths = {np.asarray(v).shape for v in vectors.values()}
    if len(widths) != 1:
        raise ValueError(f"vectors have different shapes: {sorted(widths)}")
    M = np.stack([np.asarray(vectors[n], dtype=np.float64) for n in names])  # [k, d]
    M = M / np.linalg.norm(M, axis=1, keepdims=True)
    return pd.DataFrame(np.clip(M @ M.T, -1.0, 1.0), index=names, columns=names)


def _select(
    directions: Mapping[str, Direction] | Sequence[Direction],
    label_source: str | None,
    position: str | None,
    method: str | None = None,
    site: str | None = None,
) -> list[Direction]:
    items = list(directions.values()) if isinstance(directions, Mapping) else list(directions)
    wanted = {"label_source": label_source, "position": position, "method": method, "site": site}
    return [d for d in items if all(v is None or getattr(d, k) == v for k, v in wanted.items())]


def method_cosines(
    directions: Mapping[str, Direction] | Sequence[Direction],
    site: str,
    position: str | None = None,
    label_source: str | None = None,
) -> pd.DataFrame:
    """Cosine similarity between methods at one site, labelled by method.

    Args:
        directions: fitted directions (e.g. from fit_and_evaluate).
        site: the hook name to compare at.
        position: keep only this position (needed when several are present).
        label_source: keep only this label source (needed when several are present).

    Example:
        >>> d = lambda m, v: Direction(np.array(v), 1, "blocks.1.hook_resid_post", "answer", m, "pressure")
        >>> method_cosines([d("lda", [1.0, 0.0]), d("mean_diff", [1.0, 1.0])], "blocks.1.hook_resid_post").shape
        (2, 2)
    """
    chosen = _select(directions, label_source, position, site=site)
    names = [d.method for d in chosen]
    if len(set(names)) != len(names):
        raise ValueError("several directions per method: pass position and label_source")
    return cosine_table({d.method: d.vector for d in chosen})


def layer_cosines(
    directions: Mapping[str, Direction] | Sequence[Direction],
    method: str,
    position: str | None = None,
    label_source: str | None = None,
) -> pd.DataFrame:
    """Cosine similarity between layers for one method, labelled by layer (sorted).

    Args:
        directions: fitted directions.
        method: the probe method.
        position: keep only this position (needed when several are present).
        label_source: keep only this label source (needed when several are present).

    Example:
        >>> d = lambda L, v: Direction(np.array(v), L, f"blocks.{L}.hook_resid_post", "answer", "lda", "pressure")
        >>> layer_cosines([d(2, [0.0, 1.0]), d(1, [1.0, 0.0])], "lda").index.tolist()
        [1, 2]
    """
    chosen = sorted(_select(directions, label_source, position, method=method), key=lambda d: d.layer)
    layers = [d.layer for d in chosen]
    if len(set(layers)) != len(layers):
        raise ValueError("several directions per layer: pass position and label_source (or filter sites)")
    table = cosine_table({str(d.layer): d.vector for d in chosen})
    table.index = table.columns = layers
    return table


def projections_by_condition(
    direction: Direction,
    X: np.ndarray,
    conditions: Sequence[str] | np.ndarray,
    groups: Sequence[str] | np.ndarray | None = None,
    ids: Sequence[str] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Projection of each example on the unit direction, tidy for plotting.

    Also gives `z`: the projection in units of the direction's negative-class
    spread, centred on the midpoint of the two class means (0 is the threshold).

    Args:
        direction: the direction.
        X: [n, d_model] activations.
        conditions: [n] condition of each example (neutral, user_wrong, ...).
        groups: [n] pair ids (optional).
        ids: [n] example ids (optional).

    Returns:
        Columns id, pair_id, condition, projection, z.

    Example:
        >>> d = Direction(np.array([1.0, 0.0]), 0, "blocks.0.hook_resid_post", "answer", "lda", "pressure")
        >>> projections_by_condition(d, np.array([[2.0, 5.0]]), ["neutral"])["projection"].tolist()
        [2.0]
    """
    proj = direction.project(X)  # [n]
    n = len(proj)
    conditions = np.asarray(conditions)
    if len(conditions) != n:
        raise ValueError(f"{len(conditions)} conditions for {n} rows")
    neg, pos = direction.class_means
    spread = direction.class_stds[0] if np.isfinite(direction.class_stds[0]) and direction.class_stds[0] > 0 else 1.0
    mid = (neg + pos) / 2 if np.isfinite(neg) and np.isfinite(pos) else 0.0
    return pd.DataFrame(
        {
            "id": np.asarray(ids) if ids is not None else np.arange(n).astype(str),
            "pair_id": np.asarray(groups) if groups is not None else np.full(n, ""),
            "condition": conditions,
            "projection": proj,
            "z": (proj - mid) / spread,
        }
    )


def store_projections(direction: Direction, store: ActivationStore, key: str) -> pd.DataFrame | None:
    """`projections_by_condition` of every example of `store` (rows without the position skipped) on `direction`.

    Conditions are written `task:condition`; the `direction` column holds `key`. None when the store lacks the
    direction's site or position.

    Example:
        >>> frame = store_projections(direction, ActivationStore("artifacts/demo/activations"), key)  # doctest: +SKIP
    """
    if direction.site not in store.sites or direction.position not in store.positions:
        return None
    X = store.get(direction.site, direction.position)  # [n_examples, d_model]
    ok = ~np.isnan(X).any(axis=1)
    kept = [e for e, k in zip(store.examples, ok, strict=True) if k]
    frame = projections_by_condition(direction, X[ok], [f"{e.task}:{e.condition}" for e in kept],
                                     [e.pair_id for e in kept], [e.id for e in kept])
    frame["direction"] = key
    return frame
