"""Fit every (label source, site, position, method) and report held-out metrics.

`fit_and_evaluate` is the array-level entry point the CLI calls after loading
an ActivationStore: it returns a `ProbeReport` (JSON-serialisable rows of
held-out metrics, best layer per method, control task, seeds, folds) and the
Directions fitted on all rows of each label set.

Example:
    >>> from probes.synthetic import planted
    >>> from probes.labels import LabelSet
    >>> data = planted(n_pairs=20, per_pair=2, d=6, seed=0)
    >>> labels = {"demo": LabelSet("demo", np.ones(40, bool), data.y, data.groups, "pos", "neg")}
    >>> report, dirs = fit_and_evaluate({("blocks.0.hook_resid_post", "last_prompt"): data.X}, labels,
    ...                                 methods=("mean_diff",), n_boot=50)
    >>> report.best_layers[0]["layer"]
    0
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interp.stats import DEFAULT_N_BOOT
from interp.store.atomic import atomic_write_json
from probes.direction import Direction, layer_of_site
from probes.estimators import ProbeNotApplicable, make_probe
from probes.evaluate import evaluate_probe
from probes.labels import LabelSet
from probes.splits import fold_of_group, grouped_folds

DEFAULT_METHODS: tuple[str, ...] = ("logreg", "mean_diff", "lda", "pca_diff")
FeatureKey = tuple[str, str]  # (site, position)
REPORT_VERSION = 1


@dataclass(frozen=True)
class ProbeReport:
    """Held-out metrics of every fitted probe, and how they were obtained.

    Args:
        rows: one dict per (label_source, site, position, method): identifiers,
            layer, then HeldOutScores.to_dict() columns (acc, auroc, their CIs,
            majority_acc, control_acc, control_auroc, selectivity, n, ...).
        best_layers: per (label_source, position, method), the row with the
            highest held-out AUROC (ties: the lowest layer).
        skipped: cells a method could not fit, with the reason.
        methods: probe methods run.
        label_sources: label sources run.
        n_splits: outer folds asked for.
        n_boot: bootstrap replicates.
        seeds: the seed of each random step.
        folds: per label source, the test fold of each pair id.
        model_hash: the model the activations came from.
        dataset_hash: the examples' hash.

    Example:
        >>> ProbeReport.from_dict(ProbeReport(rows=()).to_dict()).rows
        ()
    """

    rows: tuple[dict[str, Any], ...]
    best_layers: tuple[dict[str, Any], ...] = ()
    skipped: tuple[dict[str, Any], ...] = ()
    methods: tuple[str, ...] = DEFAULT_METHODS
    label_sources: tuple[str, ...] = ()
    n_splits: int = 5
    n_boot: int = DEFAULT_N_BOOT
    seeds: dict[str, int] = field(default_factory=dict)
    folds: dict[str, dict[str, int]] = field(default_factory=dict)
    model_hash: str = ""
    dataset_hash: str = ""
    version: int = REPORT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (strict: NaN becomes None)."""
        out = asdict(self)
        for name in ("rows", "best_layers", "skipped", "methods", "label_sources"):
            out[name] = list(out[name])
        return _nan_to_none(out)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProbeReport:
        if d.get("version", REPORT_VERSION) != REPORT_VERSION:
            raise ValueError(f"probe report version {d.get('version')!r}, expected {REPORT_VERSION}")
        return cls(
            rows=tuple(_none_to_nan(r) for r in d["rows"]),
            best_layers=tuple(_none_to_nan(r) for r in d.get("best_layers", ())),
            skipped=tuple(dict(r) for r in d.get("skipped", ())),
            methods=tuple(d.get("methods", DEFAULT_METHODS)),
            label_sources=tuple(d.get("label_sources", ())),
            n_splits=int(d.get("n_splits", 5)),
            n_boot=int(d.get("n_boot", DEFAULT_N_BOOT)),
            seeds={k: int(v) for k, v in d.get("seeds", {}).items()},
            folds={k: {g: int(f) for g, f in v.items()} for k, v in d.get("folds", {}).items()},
            model_hash=d.get("model_hash", ""),
            dataset_hash=d.get("dataset_hash", ""),
        )

    def to_frame(self) -> pd.DataFrame:
        """The rows as a tidy DataFrame (one row per label source, site, position, method)."""
        return pd.DataFrame(list(self.rows))

    def save(self, path: str | Path) -> None:
        """Write as JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ProbeReport:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def _none_to_nan(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: float("nan") if v is None else v for k, v in row.items()}


def _layer(site: str) -> int:
    layer = layer_of_site(site)
    return -1 if layer is None else layer


def fit_directions(
    features: Mapping[FeatureKey, np.ndarray],
    labels: Mapping[str, LabelSet],
    methods: Sequence[str] = DEFAULT_METHODS,
    seed: int = 0,
    model_hash: str = "",
    dataset_hash: str = "",
) -> tuple[dict[str, Direction], list[dict[str, Any]]]:
    """Fit each method on all rows of each label set at each (site, position).

    Args:
        features: (site, position) -> [n_examples, d_model] activations (all examples).
        labels: label source -> LabelSet (its mask selects the rows).
        methods: keys of probes.PROBES.
        seed: seed of the probes that shuffle.
        model_hash: stored on each Direction.
        dataset_hash: stored on each Direction.

    Returns:
        (Direction.key -> Direction, skipped cells with their reason).

    Example:
        >>> from probes.synthetic import planted
        >>> data = planted(n_pairs=10, per_pair=2, d=4)
        >>> ls = {"demo": LabelSet("demo", np.ones(20, bool), data.y, data.groups, "p", "n")}
        >>> dirs, _ = fit_directions({("blocks.3.hook_resid_post", "answer"): data.X}, ls, ("lda",))
        >>> list(dirs)
        ['demo/lda/answer/blocks.3.hook_resid_post']
    """
    directions: dict[str, Direction] = {}
    skipped: list[dict[str, Any]] = []
    for source, ls in labels.items():
        for (site, position), feats in features.items():
            X = ls.select(np.asarray(feats))  # [n, d]
            for method in methods:
                try:
                    probe = make_probe(method, seed).fit(X, ls.y, ls.groups)
                except ProbeNotApplicable as e:
                    skipped.append(
                        {"label_source": source, "site": site, "position": position, "method": method, "reason": str(e)}
                    )
                    continue
                meta: dict[str, Any] = {"n": ls.n, "n_pos": int(ls.y.sum()), "n_groups": len(np.unique(ls.groups))}
                if hasattr(probe, "C_"):
                    meta["C"] = probe.C_
                d = Direction(
                    vector=probe.direction_.astype(np.float32),
                    layer=_layer(site),
                    site=site,
                    position=position,
                    method=method,
                    label_source=source,
                    class_means=(float(probe.class_means_[0]), float(probe.class_means_[1])),
                    class_stds=(float(probe.class_stds_[0]), float(probe.class_stds_[1])),
                    model_hash=model_hash,
                    dataset_hash=dataset_hash,
                    resid_norm=float(np.linalg.norm(X, axis=1).mean()),
                    metadata=meta,
                )
                directions[d.key] = d
    return directions, skipped


def best_layers(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (label_source, position, method): the row with the highest AUROC.

    Example:
        >>> rows = [{"label_source": "s", "position": "p", "method": "m", "layer": L, "auroc": a}
        ...         for L, a in [(0, 0.6), (1, 0.9), (2, 0.9)]]
        >>> best_layers(rows)[0]["layer"]
        1
    """
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r["layer"]):
        key = (row["label_source"], row["position"], row["method"])
        score = row["auroc"] if np.isfinite(row["auroc"]) else -np.inf
        if key not in best or score > best[key]["auroc"]:
            best[key] = {
                **{k: row[k] for k in ("label_source", "position", "method", "layer")},
                "site": row.get("site", ""),
                "auroc": score,
                "auroc_low": row.get("auroc_low", float("nan")),
                "auroc_high": row.get("auroc_high", float("nan")),
                "selectivity": row.get("selectivity", float("nan")),
            }
    return [best[k] for k in sorted(best)]


def fit_and_evaluate(
    features: Mapping[FeatureKey, np.ndarray],
    labels: Mapping[str, LabelSet],
    methods: Sequence[str] = DEFAULT_METHODS,
    n_splits: int = 5,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    control: bool = True,
    model_hash: str = "",
    dataset_hash: str = "",
    progress: Callable[[str], None] | None = None,
) -> tuple[ProbeReport, dict[str, Direction]]:
    """Held-out metrics for every cell, and Directions fitted on all rows.

    Each label set carries its own mask, y and pair-id groups (a label source
    uses its own subset of the examples), so the folds are drawn once per label
    source and shared by every site, position and method: comparisons across
    layers and methods use the same splits.

    Args:
        features: (site, position) -> [n_examples, d_model] activations of all examples.
        labels: label source -> LabelSet (see probes.labels.build_labels).
        methods: keys of probes.PROBES.
        n_splits: outer grouped folds.
        n_boot: bootstrap replicates of each interval.
        seed: seed of folds, control permutation, bootstrap and probes.
        control: run the control task (doubles the cost).
        model_hash: recorded in the report and on each Direction.
        dataset_hash: recorded in the report and on each Direction.
        progress: called with a short message before each cell.

    Returns:
        (ProbeReport, Direction.key -> Direction).

    Example:
        >>> report, dirs = fit_and_evaluate({}, {})
        >>> report.rows, dirs
        ((), {})
    """
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    folds_by_source: dict[str, dict[str, int]] = {}
    for source, ls in labels.items():
        folds = grouped_folds(ls.y, ls.groups, n_splits, seed)
        folds_by_source[source] = fold_of_group(ls.groups, folds)
        for (site, position), feats in features.items():
            X = ls.select(np.asarray(feats))  # [n, d]
            for method in methods:
                if progress is not None:
                    progress(f"{source} {site} {position} {method}")
                try:
                    scores = evaluate_probe(
                        make_probe(method, seed), X, ls.y, ls.groups, n_splits, seed, n_boot, control, folds
                    )
                except ProbeNotApplicable as e:
                    skipped.append(
                        {"label_source": source, "site": site, "position": position, "method": method, "reason": str(e)}
                    )
                    continue
                ids = {
                    "label_source": source,
                    "site": site,
                    "layer": _layer(site),
                    "position": position,
                    "method": method,
                }
                rows.append({**ids, **scores.to_dict()})
    directions, _ = fit_directions(features, labels, methods, seed, model_hash, dataset_hash)
    report = ProbeReport(
        rows=tuple(rows),
        best_layers=tuple(best_layers(rows)),
        skipped=tuple(skipped),
        methods=tuple(methods),
        label_sources=tuple(labels),
        n_splits=n_splits,
        n_boot=n_boot,
        seeds={"folds": seed, "control": seed, "bootstrap": seed, "probe": seed},
        folds=folds_by_source,
        model_hash=model_hash,
        dataset_hash=dataset_hash,
    )
    return report, directions
