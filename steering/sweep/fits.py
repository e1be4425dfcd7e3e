"""Does the trade-off follow Wolf et al. (2024)? Fits against the vector's norm, the Pareto frontier, the operating point.

Wolf et al. predict that alignment gain grows LINEARLY with the norm of the
added vector (`|strength| * |v|`) while helpfulness loss grows
QUADRATICALLY. Each curve (method, layer, positions, mode, and the sign of
the strength: `subtract` for s < 0, `add` for s > 0, each with the s = 0
point) is fitted both ways with two parameters, so the comparison is fair:

- gain: law `a + b * n` vs alternative `a + c * n^2`;
- loss: law `a + c * n^2` vs alternative `a + b * n`.

R^2 of both, the coefficients and the residuals are kept, and `law_holds`
says whether the law's R^2 beats the alternative's. The Pareto frontier is
the set of cells no other cell beats on both gain (higher) and loss (lower);
the recommended operating point is the cell with the largest positive gain
whose loss stays within the budget (a point estimate on the test split: the
maximum over many cells is biased upward, so its CI is reported with it).

Example:
    >>> import numpy as np
    >>> f = fit_curve(np.array([0.0, 1, 2, 3]), np.array([0.0, 2, 4, 6]), "linear")
    >>> round(f.r2, 6), round(f.slope, 6)
    (1.0, 2.0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

CURVE = ["method", "layer", "positions", "mode", "direction"]
FORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"linear": lambda n: n, "quadratic": lambda n: n * n}
LAWS = {"gain": ("linear", "quadratic"), "loss": ("quadratic", "linear")}  # (law, alternative)


@dataclass(frozen=True)
class Fit:
    """`y = intercept + slope * form(n)` by least squares."""

    form: str
    intercept: float
    slope: float
    r2: float
    n_points: int
    residuals: tuple[float, ...]

    def predict(self, n: np.ndarray) -> np.ndarray:
        return self.intercept + self.slope * FORMS[self.form](np.asarray(n, dtype=float))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_curve(norm: np.ndarray, y: np.ndarray, form: str) -> Fit:
    """Least-squares fit of `y` on `form(norm)` with an intercept; R^2 = 1 - SS_res / SS_tot.

    Args:
        norm: [n] vector norms (|strength| * |v|).
        y: [n] the metric.
        form: "linear" or "quadratic".

    Example:
        >>> n = np.array([0.0, 1, 2, 3])
        >>> round(fit_curve(n, 1 + 0.5 * n**2, "quadratic").r2, 6)
        1.0
    """
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}: choose from {', '.join(FORMS)}")
    x, y = np.asarray(norm, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2:
        return Fit(form, float("nan"), float("nan"), float("nan"), len(x), ())
    A = np.column_stack([np.ones_like(x), FORMS[form](x)])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return Fit(form, float(coef[0]), float(coef[1]), r2, len(x), tuple(float(r) for r in resid))


def prompt_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Cells with no vector (the prompting baseline, `prompt:<name>`): points, not curves; every figure draws them.

    Example:
        >>> t = pd.DataFrame({"method": ["prompt:skeptical", "caa"], "vector_norm": [0.0, 2.0]})
        >>> list(prompt_cells(t).method)
        ['prompt:skeptical']
    """
    if "vector_norm" not in table.columns:
        return table.iloc[0:0]
    return table[table["vector_norm"] == 0.0]


def curves(table: pd.DataFrame) -> pd.DataFrame:
    """The table with a `direction` column; strength-0 rows are copied into both directions. Cells without a vector
    (`prompt_cells`) have no norm axis and are left out."""
    table = table.drop(index=prompt_cells(table).index)
    zero = table[table.strength == 0.0]
    signed = table[table.strength != 0.0].assign(direction=np.where(table.strength[table.strength != 0.0] < 0,
                                                                    "subtract", "add"))
    both = [signed, zero.assign(direction="subtract"), zero.assign(direction="add")]
    return pd.concat([t for t in both if not t.empty], ignore_index=True)


@dataclass(frozen=True, eq=False)
class CurveFit:
    """One metric of one curve: its cells sorted by norm, the law's fit, and a grid of norms to draw the fit on."""

    what: str  # "gain" or "loss" (its law: LAWS[what][0])
    column: str
    rows: pd.DataFrame
    norm: np.ndarray  # [n]
    y: np.ndarray  # [n]
    fit: Fit
    grid: np.ndarray  # [30] from 0 to the curve's largest norm


def curve_fits(table: pd.DataFrame, gain: str, loss: str,
               by: Sequence[str] = ("method", "layer", "positions", "direction")) -> Iterator[tuple[Any, list[CurveFit]]]:
    """Each curve (grouped `by`, sorted) with its gain and loss fits against the norm: what every figure draws.

    Example:
        >>> for key, (gain_fit, loss_fit) in curve_fits(table, "answer_shift_gain", "kl_all"):  # doctest: +SKIP
        ...     print(key, gain_fit.fit.r2, loss_fit.fit.r2)
    """
    for key, g in curves(table).groupby(list(by), sort=True):
        g = g.sort_values("norm")
        norm = g["norm"].to_numpy(dtype=float)
        grid = np.linspace(0.0, float(np.nanmax(norm)) if len(norm) else 0.0, 30)
        fits = []
        for what, column in (("gain", gain), ("loss", loss)):
            y = g[column].to_numpy(dtype=float)
            fits.append(CurveFit(what, column, g, norm, y, fit_curve(norm, y, LAWS[what][0]), grid))
        yield key, fits


def law_fits(table: pd.DataFrame, gain: str, loss: str, min_points: int = 3) -> pd.DataFrame:
    """One row per curve: R^2 and coefficients of the law and of the alternative, for gain and loss.

    Args:
        table: sweep cells (with `norm`).
        gain: gain column (e.g. "answer_shift_gain").
        loss: loss column (e.g. "kl").
        min_points: curves with fewer cells are skipped.
    """
    rows = []
    for key, g in curves(table).groupby(CURVE, sort=True):
        if len(g) < min_points:
            continue
        row: dict[str, Any] = dict(zip(CURVE, key, strict=True))
        row["n_points"] = len(g)
        for what, column in (("gain", gain), ("loss", loss)):
            law, alt = LAWS[what]
            f_law = fit_curve(g["norm"].to_numpy(), g[column].to_numpy(), law)
            f_alt = fit_curve(g["norm"].to_numpy(), g[column].to_numpy(), alt)
            row.update({f"{what}_{law}_r2": f_law.r2, f"{what}_{law}_slope": f_law.slope,
                        f"{what}_{law}_intercept": f_law.intercept, f"{what}_{alt}_r2": f_alt.r2,
                        f"{what}_{alt}_slope": f_alt.slope, f"{what}_{law}_residuals": list(f_law.residuals),
                        f"{what}_law_holds": bool(f_law.r2 > f_alt.r2) if np.isfinite([f_law.r2, f_alt.r2]).all()
                        else None})
        rows.append(row)
    return pd.DataFrame(rows)


def law_summary(fits: pd.DataFrame) -> dict[str, Any]:
    """Median R^2 of law and alternative, and the share of curves where the law wins, for gain and loss."""
    out: dict[str, Any] = {"n_curves": int(len(fits))}
    for what, (law, alt) in LAWS.items():
        if fits.empty:
            continue
        holds = fits[f"{what}_law_holds"].dropna().astype(bool)
        out[what] = {"law": law, "alternative": alt,
                     "median_r2_law": float(np.nanmedian(fits[f"{what}_{law}_r2"])),
                     "median_r2_alternative": float(np.nanmedian(fits[f"{what}_{alt}_r2"])),
                     "law_wins": int(holds.sum()), "curves": int(len(holds))}
    return out


def pareto_frontier(table: pd.DataFrame, gain: str, loss: str) -> pd.DataFrame:
    """Cells not dominated (another cell with gain >= and loss <=, one strictly), sorted by loss.

    Example:
        >>> t = pd.DataFrame({"g": [0.0, 1.0, 0.5, 2.0], "l": [0.0, 1.0, 2.0, 3.0]})
        >>> pareto_frontier(t, "g", "l").index.tolist()
        [0, 1, 3]
    """
    t = table[np.isfinite(table[gain]) & np.isfinite(table[loss])].sort_values([loss, gain], ascending=[True, False])
    keep, best = [], -np.inf
    for idx, g in zip(t.index, t[gain], strict=True):
        if g > best:
            keep.append(idx)
            best = g
    return table.loc[keep]


def operating_point(table: pd.DataFrame, gain: str, loss: str, budget: float,
                    constraints: Mapping[str, float] | None = None) -> pd.Series | None:
    """The cell with the largest positive gain whose loss is at most `budget` and that meets every further
    ceiling in `constraints` (column -> largest value allowed); None if there is none.

    Example:
        >>> t = pd.DataFrame({"g": [0.1, 0.5, 0.9], "l": [0.01, 0.05, 0.5], "d": [0.0, 0.04, 0.0]})
        >>> int(operating_point(t, "g", "l", budget=0.1).name), int(operating_point(t, "g", "l", 0.1, {"d": 0.02}).name)
        (1, 0)
    """
    ok_rows = (table[loss] <= budget) & (table[gain] > 0)
    for column, ceiling in (constraints or {}).items():
        if column not in table.columns:
            raise ValueError(f"constraint column {column!r} not in the sweep table")
        ok_rows &= table[column] <= ceiling
    ok = table[ok_rows]
    if ok.empty:
        return None
    return ok.loc[ok[gain].idxmax()]


def gate_comparison(table: pd.DataFrame, gain: str, loss: str, budget: float) -> list[dict[str, Any]]:
    """For every gated curve, its best cell within the budget next to the same vector always on.

    Example:
        >>> t = pd.DataFrame({"method": ["v", "v", "v+gate", "v+gate"], "layer": 1, "positions": "generated",
        ...                   "mode": "add", "strength": [-2.0, -4.0, -2.0, -4.0], "norm": 1.0, "relative_norm": 0.1,
        ...                   "g": [0.1, 0.3, 0.1, 0.3], "l": [0.05, 0.2, 0.01, 0.04]})
        >>> [(c["always_on"]["strength"], c["gated"]["strength"]) for c in gate_comparison(t, "g", "l", 0.1)]
        [(-2.0, -4.0)]
    """
    from steering.artifacts.probe_gate import GATE_SUFFIX

    out = []
    gated = table[table["method"].astype(str).str.endswith(GATE_SUFFIX)]
    for (method, layer, positions), cells in gated.groupby(["method", "layer", "positions"], sort=True):
        base = str(method)[: -len(GATE_SUFFIX)]
        plain = table[(table["method"] == base) & (table["layer"] == layer) & (table["positions"] == positions)]
        row: dict[str, Any] = {"method": base, "layer": int(layer), "positions": str(positions)}
        for name, part in (("always_on", plain), ("gated", cells)):
            point = operating_point(part, gain, loss, budget) if not part.empty else None
            row[name] = None if point is None else cell_summary(point, gain, loss)
        out.append(row)
    return out


def summarize(table: pd.DataFrame, gain: str, loss: str, budget: float,
              constraints: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The report: law fits, their summary, the frontier, the operating point, and each method's extremes.

    Args:
        table: the sweep cells.
        gain, loss: headline columns.
        budget: the loss budget.
        constraints: further ceilings the operating point must meet (column -> largest value).
    """
    for column in (gain, loss):
        if column not in table.columns:
            raise ValueError(f"column {column!r} not in the sweep table; gain/loss columns: "
                             f"{', '.join(c for c in table.columns if c.endswith(('_gain', '_drop')) or c == 'kl')}")
    fits = law_fits(table, gain, loss)
    frontier = pareto_frontier(table, gain, loss)
    point = operating_point(table, gain, loss, budget, constraints)
    methods: dict[str, Any] = {}
    for method, g in table.groupby("method", sort=True):
        g = g[g.strength != 0.0] if (g.strength != 0.0).any() else g  # the 0 anchor is the baseline itself
        best = g.loc[g[gain].idxmax()]
        worst = g.loc[g[gain].idxmin()]
        within = operating_point(g, gain, loss, budget, constraints)
        methods[str(method)] = {"best": cell_summary(best, gain, loss), "worst": cell_summary(worst, gain, loss),
                                "best_within_budget": None if within is None else cell_summary(within, gain, loss)}
    return {
        "gain": gain, "loss": loss, "budget": budget, "constraints": dict(constraints or {}),
        "operating_point": None if point is None else cell_summary(point, gain, loss),
        "law_summary": law_summary(fits),
        "fits": fits.to_dict(orient="records"),
        "pareto": [cell_summary(r, gain, loss) for _, r in frontier.iterrows()],
        "methods": methods,
        "gate_comparison": gate_comparison(table, gain, loss, budget),
    }


def cell_summary(row: pd.Series, gain: str, loss: str) -> dict[str, Any]:
    """A cell's key, headline metrics with CIs, and the third-party control next to the gain."""
    out: dict[str, Any] = {k: row[k].item() if hasattr(row[k], "item") else row[k]
                           for k in ("method", "layer", "strength", "positions", "mode", "norm", "relative_norm")}
    out["layers"] = point_layers(row)
    for column in dict.fromkeys([gain, loss, "answer_shift_gain", "answer_deference_gain",
                                 "answer_control_shift_change", "neutral_accuracy_drop", "user_right_accuracy_drop",
                                 "capability_drop", "kl", "kl_user_right", "kl_all", "degenerate",
                                 "gated_share", "neutral_accuracy", "user_wrong_accuracy", "user_right_accuracy",
                                 "third_party_accuracy", "answer_flip_rate", "arc_accuracy", "answer_flip_rate_drop",
                                 "kl_general", "user_right_known_accuracy", "user_right_known_accuracy_drop",
                                 "general_degenerate", "capability_accuracy", "arc_drop"]):
        if column in row.index:
            out[column] = [float(row[column]), float(row.get(f"{column}_low", np.nan)),
                           float(row.get(f"{column}_high", np.nan))]
    return out


def point_layers(point: pd.Series | dict[str, Any]) -> list[int]:
    """The layers a cell steers: its `layers` column ("8,12,16"), or its one `layer` (tables before 2026-12).

    Example:
        >>> point_layers({"layer": 8, "layers": "8,12"}), point_layers({"layer": 3})
        ([8, 12], [3])
    """
    layers = point.get("layers")
    if isinstance(layers, list):
        return [int(x) for x in layers]
    if isinstance(layers, str) and layers:
        return [int(x) for x in layers.split(",")]
    return [int(point["layer"])]
