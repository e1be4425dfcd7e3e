"""Strength x layer x positions x method sweeps: config, cells, Ray, metrics, fits, report.

| module    | holds                                                                       |
| --------- | --------------------------------------------------------------------------- |
| `config`  | `SweepConfig` (saved to sweep.json), `QUICK`, the strength grids             |
| `run`     | `run_sweep`: vectors and gates from the train split, cells, resumable table  |
| `cells`   | one batched pass (`SweepCell`) and what every pass shares (`CellContext`)    |
| `on_ray`  | the same cells on Ray actors                                                 |
| `metrics` | one cell's metrics: alignment gain, third-party control, helpfulness loss    |
| `fits`    | Wolf et al. fits against the norm, Pareto frontier, operating point          |
| `report`  | fits as JSON, figures, the recommended vector                                |
| `transfer`| the train-task x test-task matrix of learned vectors                         |

Example:
    >>> from steering.sweep import QUICK, run_sweep
    >>> result = run_sweep(QUICK, Path("artifacts/x/sweep"), model)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.lazy_names import lazy_names

if TYPE_CHECKING:
    from steering.sweep.config import GATE_CHOICES, QUICK, SweepConfig, SweepConfigError, sweep_strengths
    from steering.sweep.fits import law_fits, operating_point, pareto_frontier, summarize
    from steering.sweep.report import operating_point_vector, write_report
    from steering.sweep.run import KEY, SweepResult, read_table, run_sweep
    from steering.sweep.transfer import transfer_matrix

# loaded on first use: the app reads fits and reports without importing the model code
_LAZY = {
    **dict.fromkeys(("GATE_CHOICES", "QUICK", "SweepConfig", "SweepConfigError", "sweep_strengths"),
                    "steering.sweep.config"),
    **dict.fromkeys(("law_fits", "operating_point", "pareto_frontier", "summarize"), "steering.sweep.fits"),
    **dict.fromkeys(("operating_point_vector", "write_report"), "steering.sweep.report"),
    **dict.fromkeys(("KEY", "SweepResult", "read_table", "run_sweep"), "steering.sweep.run"),
    "transfer_matrix": "steering.sweep.transfer",
}

__all__ = [
    "GATE_CHOICES",
    "KEY",
    "QUICK",
    "SweepConfig",
    "SweepConfigError",
    "SweepResult",
    "law_fits",
    "operating_point",
    "operating_point_vector",
    "pareto_frontier",
    "read_table",
    "run_sweep",
    "summarize",
    "sweep_strengths",
    "transfer_matrix",
    "write_report",
]


__getattr__ = lazy_names(__name__, _LAZY)
