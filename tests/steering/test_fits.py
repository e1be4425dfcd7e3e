"""steering.sweep.fits: planted laws are recovered, the frontier and the operating point are what a constructed table implies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from steering.sweep.fits import fit_curve, law_fits, law_summary, operating_point, pareto_frontier, summarize


def _table(gain_fn, loss_fn, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    rows = []
    for method, scale in (("caa", 1.0), ("naive", 0.5)):
        for layer in (6, 10):
            for s in (-8.0, -6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0):
                norm = abs(s) * scale * (1 + layer / 10)
                sign = -1.0 if s < 0 else 1.0
                rows.append({"method": method, "layer": layer, "strength": s, "positions": "generated", "mode": "add",
                             "norm": norm, "relative_norm": norm / 10,
                             "g": sign * -gain_fn(norm) + noise * rng.normal(),
                             "l": loss_fn(norm) + noise * rng.normal()})
    return pd.DataFrame(rows)


def test_fit_recovers_planted_linear_and_quadratic():
    n = np.linspace(0, 10, 9)
    lin = fit_curve(n, 0.3 + 0.7 * n, "linear")
    quad = fit_curve(n, 0.1 + 0.02 * n**2, "quadratic")
    assert lin.r2 > 0.99 and quad.r2 > 0.99
    assert lin.slope == pytest.approx(0.7) and lin.intercept == pytest.approx(0.3)
    assert quad.slope == pytest.approx(0.02) and quad.intercept == pytest.approx(0.1)
    assert np.allclose(lin.residuals, 0, atol=1e-9)
    # the wrong form fits worse
    assert fit_curve(n, 0.02 * n**2, "linear").r2 < 0.97
    with pytest.raises(ValueError, match="unknown form"):
        fit_curve(n, n, "cubic")


def test_law_fits_say_the_law_holds_on_planted_data_and_not_on_swapped_data():
    wolf = law_fits(_table(lambda n: 0.1 * n, lambda n: 0.01 * n**2, noise=1e-4), "g", "l")
    assert len(wolf) == 2 * 2 * 2  # methods x layers x directions
    assert (wolf["gain_linear_r2"] > 0.99).all() and (wolf["loss_quadratic_r2"] > 0.99).all()
    assert wolf["gain_law_holds"].all() and wolf["loss_law_holds"].all()
    swapped = law_fits(_table(lambda n: 0.01 * n**2, lambda n: 0.1 * n, noise=1e-4), "g", "l")
    assert not swapped["gain_law_holds"].any() and not swapped["loss_law_holds"].any()
    summary = law_summary(swapped)
    assert summary["gain"]["law_wins"] == 0 and summary["gain"]["median_r2_alternative"] > 0.99


def test_pareto_frontier_and_operating_point_on_a_constructed_table():
    t = pd.DataFrame({
        "method": ["a", "a", "b", "b", "c"], "layer": [1, 2, 1, 2, 1], "strength": [-1.0, -2.0, -1.0, -2.0, -4.0],
        "positions": ["all"] * 5, "mode": ["add"] * 5, "norm": [1.0, 2, 1, 2, 4], "relative_norm": [0.1] * 5,
        "g": [0.10, 0.30, 0.05, 0.50, 0.80],
        "l": [0.01, 0.02, 0.03, 0.08, 0.40],
    })
    front = pareto_frontier(t, "g", "l")
    assert front.index.tolist() == [0, 1, 3, 4]  # row 2 is dominated by row 1
    assert int(operating_point(t, "g", "l", budget=0.1).name) == 3
    assert int(operating_point(t, "g", "l", budget=0.025).name) == 1
    assert operating_point(t, "g", "l", budget=0.001) is None
    # a gain that is never positive gives no operating point (a null result, not a recommendation)
    assert operating_point(t.assign(g=-t.g), "g", "l", budget=1.0) is None
    report = summarize(t, "g", "l", budget=0.1)
    assert report["operating_point"]["method"] == "b" and report["operating_point"]["g"][0] == 0.5
    assert report["methods"]["a"]["best_within_budget"]["layer"] == 2
    assert [p["method"] for p in report["pareto"]] == ["a", "a", "b", "c"]
    with pytest.raises(ValueError, match="not in the sweep table"):
        summarize(t, "nope", "l", 0.1)


def test_figures_draw_more_methods_than_one_palette_holds(tmp_path):
    """The README's frontier sweep has 11 methods: every colour the figures cycle through is one matplotlib and
    plotly both read, and a Pareto figure of more methods than the palette holds is drawn."""
    from pathlib import Path

    import matplotlib.colors as mcolors

    from steering.sweep.report import COLORS, PROMPT_COLORS, pareto_figure

    assert all(mcolors.is_color_like(c) for c in (*COLORS, *PROMPT_COLORS))
    n = len(COLORS) + 2
    table = pd.DataFrame({
        "method": [f"m{i:02d}" for i in range(n) for _ in range(2)], "layer": 12, "positions": "generated",
        "strength": [s for _ in range(n) for s in (0.0, -1.0)], "vector_norm": [0.0 if i < 2 else 1.0 for i in range(n)
                                                                             for _ in range(2)],
        "gain": np.linspace(0, 1, 2 * n), "loss": np.linspace(0, 0.1, 2 * n)})
    files = pareto_figure(table, "gain", "loss", 0.02, None, tmp_path)
    assert Path(files["png"]).stat().st_size > 0 and "m13" in Path(files["html"]).read_text()
