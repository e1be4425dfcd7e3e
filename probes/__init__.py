"""Linear probes on cached activations: fit, evaluate honestly, keep the directions.

`labels` is the one registry of label sources (task, positive/negative conditions, position);
`estimators` and `fitting` hold every estimator of the workbench, steering vectors' and gates' included.

Probes take arrays and never run a model. The plotting functions are loaded on
first use (plotly and matplotlib are slow to import).

Example:
    >>> import probes
    >>> sorted(probes.PROBES)
    ['lda', 'logreg', 'mean_diff', 'pca_diff']
"""

from __future__ import annotations

from interp.lazy_names import lazy_names
from probes.direction import Direction, check_compatible, layer_of_site, load_directions, save_directions
from probes.estimators import (
    PROBES,
    LDAProbe,
    LinearProbe,
    LogRegProbe,
    MeanDiffProbe,
    PCADiffProbe,
    ProbeNotApplicable,
    make_probe,
)
from probes.evaluate import HeldOutScores, control_labels, evaluate_probe, generalisation_matrix, out_of_fold_proba
from probes.fitting import DIRECTION_ESTIMATORS, GateFit, fit_direction, fit_gate, store_features
from probes.geometry import cosine_table, layer_cosines, method_cosines, projections_by_condition, store_projections
from probes.labels import CONDITION_SOURCES, LABEL_SOURCES, ConditionSource, LabelSet, build_labels
from probes.metrics import auroc, bootstrap_accuracy, bootstrap_auroc
from probes.report import DEFAULT_METHODS, ProbeReport, fit_and_evaluate, fit_directions
from probes.splits import GroupLeakError, check_no_leak, grouped_folds

_LAZY = {
    "save_layer_curves": "probes.plots",
    "save_cosine_heatmap": "probes.plots",
    "save_heatmap": "probes.plots",
    "save_projection_histograms": "probes.plots",
    "layer_curves_figure": "probes.plots",
}

__all__ = [
    "CONDITION_SOURCES",
    "ConditionSource",
    "DEFAULT_METHODS",
    "DIRECTION_ESTIMATORS",
    "GateFit",
    "Direction",
    "GroupLeakError",
    "HeldOutScores",
    "LABEL_SOURCES",
    "LDAProbe",
    "LabelSet",
    "LinearProbe",
    "LogRegProbe",
    "MeanDiffProbe",
    "PCADiffProbe",
    "PROBES",
    "ProbeNotApplicable",
    "ProbeReport",
    "auroc",
    "bootstrap_accuracy",
    "bootstrap_auroc",
    "build_labels",
    "check_compatible",
    "check_no_leak",
    "control_labels",
    "cosine_table",
    "evaluate_probe",
    "fit_and_evaluate",
    "fit_direction",
    "fit_directions",
    "fit_gate",
    "generalisation_matrix",
    "grouped_folds",
    "layer_cosines",
    "layer_of_site",
    "load_directions",
    "make_probe",
    "method_cosines",
    "out_of_fold_proba",
    "projections_by_condition",
    "save_directions",
    "store_features",
    "store_projections",
    *_LAZY,
]


__getattr__ = lazy_names(__name__, _LAZY)
