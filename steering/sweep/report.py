"""A sweep's report: fits and operating point as JSON, figures (plotly HTML + matplotlib PNG), the recommended vector.

Written into `artifacts/<run>/sweep/`:

- `report.json`: `steering.sweep.fits.summarize` (law fits with R^2, frontier, operating point, per-method extremes);
- `figures/trade_off.{html,png}`: gain and loss against the signed norm, one column per method, with the law fits;
- `figures/pareto.{html,png}`: every cell's (loss, gain), the frontier, the budget and the operating point;
- `figures/tasks.{html,png}`: per-task shift gain against strength on each method's best curve, with the
  answer task's deference gain and third-party control change dashed;
- `recommended.safetensors`: the operating point's vector at its layer, scaled by its strength (use strength 1).

Example:
    >>> report = write_report(Path("artifacts/x/sweep"), table, vectors, "answer_shift_gain", "kl", 0.1)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from plotly.colors import qualitative, unlabel_rgb

from interp.store.atomic import atomic_path, atomic_write_json, atomic_write_text
from steering.artifacts.probe_gate import GATE_SUFFIX
from steering.artifacts.steerable import Steerable, load_steerable
from steering.sweep.fits import LAWS, curve_fits, pareto_frontier, point_layers, prompt_cells, summarize
from steering.sweep.transfer import transfer_matrix

TASK_GAINS = ("answer_shift_gain", "are_you_sure_shift_gain", "mimicry_shift_gain", "feedback_shift_gain")
#: drawn dashed next to the task gains: the user-specific part and the third-party control
CONTROLS = ("answer_deference_gain", "answer_control_shift_change")
#: one colour per method (a frontier sweep has a dozen): tab10's without its greys, then Dark2
COLORS = (*(c for c in qualitative.D3 if c not in ("#7F7F7F", "#BCBD22")),
          *("#{:02x}{:02x}{:02x}".format(*map(int, unlabel_rgb(c))) for c in qualitative.Dark2))  # hex: matplotlib too
#: the prompting baseline's reference lines (no vector: a level, not a curve)
PROMPT_COLORS = ("#555555", "#bcbd22", "#7f7f7f", "#aec7e8", "#98df8a")


def _save(fig_plotly: Any, fig_mpl: Any, folder: Path, name: str) -> dict[str, str]:
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    html, png = folder / f"{name}.html", folder / f"{name}.png"
    atomic_write_text(html, fig_plotly.to_html(include_plotlyjs="cdn", full_html=True))
    with atomic_path(png) as tmp:
        fig_mpl.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig_mpl)
    return {"html": str(html), "png": str(png)}


def trade_off_figure(table: pd.DataFrame, gain: str, loss: str, folder: Path) -> dict[str, str]:
    """Gain (top) and loss (bottom) vs signed norm per method, points and the law fit of each curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    prompts = prompt_cells(table)
    methods = sorted(table.drop(index=prompts.index).method.unique())
    fig = make_subplots(rows=2, cols=len(methods), subplot_titles=[*methods, *[""] * len(methods)],
                        shared_xaxes=True, vertical_spacing=0.08)
    mfig, axes = plt.subplots(2, len(methods), figsize=(4.5 * len(methods), 7), squeeze=False, sharex="col")
    layers = sorted(table.layer.unique())
    for (method, layer, positions, direction), fitted in curve_fits(table, gain, loss):
        c = methods.index(method)
        color = COLORS[layers.index(layer) % len(COLORS)]
        sign = -1.0 if direction == "subtract" else 1.0
        dash = "solid" if positions == "generated" else "dash"
        label = f"L{layer} {positions}"
        show = direction == "subtract" and c == 0
        for r, curve in enumerate(fitted):
            x, y, fit, grid = sign * curve.norm, curve.y, curve.fit, curve.grid
            fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name=label,
                                     marker={"color": color, "symbol": "circle" if dash == "solid" else "square"},
                                     legendgroup=label, showlegend=show and r == 0), row=r + 1, col=c + 1)
            fig.add_trace(go.Scatter(x=sign * grid, y=fit.predict(grid), mode="lines", showlegend=False,
                                     line={"color": color, "dash": dash}, legendgroup=label,
                                     hovertext=f"{LAWS[curve.what][0]} fit R2={fit.r2:.2f}"), row=r + 1, col=c + 1)
            ax = axes[r][c]
            ax.scatter(x, y, color=color, s=14, marker="o" if dash == "solid" else "s",
                       label=label if show and r == 0 else None)
            ax.plot(sign * grid, fit.predict(grid), color=color, ls="-" if dash == "solid" else "--", lw=1)
    for c, method in enumerate(methods):
        axes[0][c].set_title(method)
        axes[1][c].set_xlabel("signed norm (strength x |v|)")
        for r in range(2):
            axes[r][c].axhline(0, color="grey", lw=0.5)
        for k, cell in enumerate(prompts.itertuples()):  # the prompting baseline, drawn in every panel
            for r, column in enumerate((gain, loss)):
                value = float(getattr(cell, column))
                axes[r][c].axhline(value, color=PROMPT_COLORS[k % len(PROMPT_COLORS)], ls=":", lw=1.2,
                                   label=f"{cell.method} (no vector)" if c == 0 and r == 0 else None)
                fig.add_hline(y=value, line_dash="dot", line_color=PROMPT_COLORS[k % len(PROMPT_COLORS)],
                              annotation_text=str(cell.method) if c == 0 else None, row=r + 1, col=c + 1)
    axes[0][0].set_ylabel(f"{gain} (linear fit)")
    axes[1][0].set_ylabel(f"{loss} (quadratic fit)")
    axes[0][0].legend(fontsize=7)
    fig.update_yaxes(title_text=f"{gain} (linear fit)", row=1, col=1)
    fig.update_yaxes(title_text=f"{loss} (quadratic fit)", row=2, col=1)
    fig.update_xaxes(title_text="signed norm (strength x |v|)", row=2)
    fig.update_layout(title="Alignment gain and helpfulness loss vs the vector's norm (solid: generated, dashed: all; "
                            "dotted: the prompting baseline)",
                      height=750, width=420 * len(methods) + 200)
    return _save(fig, mfig, folder, "trade_off")


def pareto_figure(table: pd.DataFrame, gain: str, loss: str, budget: float, point: dict[str, Any] | None,
                  folder: Path) -> dict[str, str]:
    """Every cell's (loss, gain) by method, the Pareto frontier, the budget line and the operating point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    fig = go.Figure()
    mfig, axes = plt.subplots(1, 2, figsize=(12, 5))  # all cells | zoom on the budget region
    front = pareto_frontier(table, gain, loss)
    near = table[table[loss] <= 3 * budget]
    prompts = set(prompt_cells(table).method)
    for i, (method, g) in enumerate(table.groupby("method", sort=True)):
        text = [f"L{r.layer} s={r.strength:+g} {r.positions}" for r in g.itertuples()]
        is_prompt = method in prompts  # the prompting baseline: large diamonds
        fig.add_trace(go.Scatter(x=g[loss], y=g[gain], mode="markers", name=str(method), text=text,
                                 marker={"color": COLORS[i % len(COLORS)], "symbol": "diamond" if is_prompt else
                                         "circle", "size": 13 if is_prompt else 7}))
        for ax, part in zip(axes, (g, g[g[loss] <= 3 * budget]), strict=True):
            ax.scatter(part[loss], part[gain], s=70 if is_prompt else 16, color=COLORS[i % len(COLORS)],
                       marker="D" if is_prompt else "o", edgecolor="k" if is_prompt else None, label=str(method))
    fig.add_trace(go.Scatter(x=front[loss], y=front[gain], mode="lines", name="Pareto frontier",
                             line={"color": "black"}))
    fig.add_vline(x=budget, line_dash="dot", annotation_text=f"budget {budget:g}")
    for ax, part in zip(axes, (front, front[front[loss] <= 3 * budget]), strict=True):
        ax.plot(part[loss], part[gain], color="black", lw=1, label="Pareto frontier")
        ax.axvline(budget, color="grey", ls=":", label=f"budget {budget:g}")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel(f"helpfulness loss: {loss}")
    if point is not None:
        fig.add_trace(go.Scatter(x=[point[loss][0]], y=[point[gain][0]], mode="markers", name="operating point",
                                 marker={"symbol": "star", "size": 16, "color": "gold"}))
        for ax in axes:
            ax.scatter([point[loss][0]], [point[gain][0]], marker="*", s=200, color="gold", edgecolor="k",
                       label="operating point", zorder=5)
    axes[0].set_ylabel(f"alignment gain: {gain}")
    axes[0].set_title("every cell")
    axes[1].set_title(f"zoom: {loss} <= {3 * budget:g} ({len(near)} cells)")
    axes[0].legend(fontsize=7)
    fig.update_layout(title="Pareto frontier across methods, layers and positions", xaxis_title=f"loss: {loss}",
                      yaxis_title=f"gain: {gain}", width=850, height=550)
    return _save(fig, mfig, folder, "pareto")


def tasks_figure(table: pd.DataFrame, gain: str, loss: str, budget: float, folder: Path) -> dict[str, str]:
    """Per-task shift gain vs strength on each method's best curve (layer, positions of its best cell in budget)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    methods = sorted(table.method.unique())
    fig = make_subplots(rows=1, cols=len(methods), subplot_titles=methods, shared_yaxes=True)
    mfig, axes = plt.subplots(1, len(methods), figsize=(4.5 * len(methods), 4), squeeze=False, sharey=True)
    columns = [c for c in (*TASK_GAINS, *CONTROLS) if c in table.columns]
    for c, method in enumerate(methods):
        g = table[table.method == method]
        ok = g[g[loss] <= budget]
        best = (ok if not ok.empty else g).sort_values(gain).iloc[-1]
        curve = g[(g.layer == best.layer) & (g.positions == best.positions)].sort_values("strength")
        for i, column in enumerate(columns):
            if column not in curve.columns:
                continue
            dash = column in CONTROLS
            fig.add_trace(go.Scatter(x=curve.strength, y=curve[column], mode="lines+markers", name=column,
                                     line={"color": COLORS[i % len(COLORS)], "dash": "dash" if dash else "solid"},
                                     showlegend=c == 0, legendgroup=column), row=1, col=c + 1)
            axes[0][c].plot(curve.strength, curve[column], marker="o", ms=3, color=COLORS[i % len(COLORS)],
                            ls="--" if dash else "-", label=column if c == 0 else None)
        title = f"{method} (L{best.layer}, {best.positions})"
        axes[0][c].set_title(title, fontsize=9)
        axes[0][c].axhline(0, color="grey", lw=0.5)
        axes[0][c].set_xlabel("strength")
        fig.layout.annotations[c].text = title
    axes[0][0].set_ylabel("shift gain (> 0: less sycophantic)")
    mfig.legend(loc="lower center", ncol=3, fontsize=7, bbox_to_anchor=(0.5, -0.12))
    fig.update_layout(title="Per-task shift gain vs strength (dashed: answer deference gain and third-party shift change)",
                      width=420 * len(methods) + 200, height=450)
    return _save(fig, mfig, folder, "tasks")


def recommended_vector(point: dict[str, Any], vector: Steerable) -> Steerable:
    """The operating point's layers of `vector` (or low-rank edit), scaled by its strength (apply with strength 1)."""
    layers, strength = point_layers(point), float(point["strength"])
    scaled = vector.select(layers) * strength
    named = ",".join(map(str, layers))
    return scaled.with_record(positions=str(point["positions"]), meta={
        **vector.meta, "operating_point": point, "folded_strength": strength,
        "use": f"strength 1.0 at layers {named}, positions {point['positions']}, mode {point['mode']}"})


def operating_point_vector(folder: Path, method: str | None = None) -> tuple[Steerable, float, dict[str, Any]]:
    """A sweep folder's recommended operating point, ready to export: the vector at its layer with the positions
    it was measured with, its strength (unfolded), and the point's measured metrics.

    Args:
        folder: artifacts/<run>/sweep.
        method: the best cell of this method's curves within the sweep's loss budget instead of the best of all
            (e.g. `learned:correct@all`, measured where llama.cpp adds a control vector: every position).

    Raises:
        ValueError: no report, no operating point, no cell of `method`, or its vector file is gone.

    Example:
        >>> vector, strength, measured = operating_point_vector(Path("artifacts/x/sweep"))  # doctest: +SKIP
    """
    folder = Path(folder)
    report_path, sweep_path = folder / "report.json", folder / "sweep.json"
    for path in (report_path, sweep_path):
        if not path.is_file():
            raise ValueError(f"{path}: no such file; run `workbench sweep` into {folder.parent.name!r} first")
    try:
        report, record = json.loads(report_path.read_text()), json.loads(sweep_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{folder}: report.json or sweep.json is not JSON ({e})") from None
    point = report.get("operating_point") if isinstance(report, dict) else None
    if method is not None and isinstance(report, dict):
        from steering.sweep.fits import cell_summary, operating_point
        from steering.sweep.run import read_table

        table = read_table(folder)
        cells = table[table.method == method]
        if cells.empty:
            raise ValueError(f"{folder}: no cells of method {method!r}; the sweep has "
                             f"{', '.join(sorted(map(str, table.method.unique())))}")
        gain, loss = str(report.get("gain")), str(report.get("loss"))
        row = operating_point(cells, gain, loss, float(report.get("budget", 0.0)))
        point = None if row is None else cell_summary(row, gain, loss)
    if not point:
        budget = report.get("budget") if isinstance(report, dict) else "?"
        constraints = (report.get("constraints") or {}) if isinstance(report, dict) and method is None else {}
        also = "".join(f", {k} <= {v}" for k, v in constraints.items())
        hint = "" if method is not None else "; --method NAME exports a method's best cell within the loss budget alone"
        raise ValueError(f"{report_path}: the sweep has no operating point (no cell gains with loss <= {budget}{also})"
                         f": nothing to recommend{hint}")
    method = str(point["method"])
    base = method[: -len(GATE_SUFFIX)] if method.endswith(GATE_SUFFIX) else method
    info = record.get("vectors", {}).get(base)
    if not info or "file" not in info:
        raise ValueError(f"{sweep_path}: no vector file recorded for method {base!r}")
    vector = load_steerable(info["file"]).select(point_layers(point))
    meta = {**vector.meta, "operating_point": {k: v for k, v in point.items()}}
    if base != method or info.get("always_gated"):  # measured behind a gate: the export carries it
        steered = {str(layer) for layer in point_layers(point)}  # the gates of the exported layers only
        meta["gate_files"] = {k: g["file"] for k, g in record.get("gates", {}).items() if k in steered}
    elif info.get("gate_files"):  # an always-gated family's cells: its gates (the sweep's, or its own)
        meta["gate_files"] = info["gate_files"]
    vector = vector.with_record(positions=str(point["positions"]), meta=meta)
    measured = {"sweep": str(folder), "gain": report.get("gain"), "loss": report.get("loss"),
                "budget": report.get("budget"), "mode": point.get("mode"), "method": method,
                **{k: v for k, v in point.items() if isinstance(v, list | float | int) and k not in ("layer", "layers")}}
    return vector, float(point["strength"]), measured


def write_report(folder: Path, table: pd.DataFrame, vectors: dict[str, Steerable], gain: str, loss: str,
                 budget: float, constraints: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Summarize the table, draw the figures, save the recommended vector; return the report dict."""
    report = summarize(table, gain, loss, budget, constraints)
    figures = folder / "figures"
    report["figures"] = {
        "trade_off": trade_off_figure(table, gain, loss, figures),
        "pareto": pareto_figure(table, gain, loss, budget, report["operating_point"], figures),
        "tasks": tasks_figure(table, gain, loss, budget, figures),
    }
    matrix = transfer_matrix(table)
    if not matrix.empty:
        report["transfer"] = matrix.reset_index(names="trained_on").to_dict(orient="records")
    point = report["operating_point"]
    if point is not None and point["method"] in vectors:
        path = folder / "recommended.safetensors"
        recommended_vector(point, vectors[point["method"]]).save(path)
        report["recommended_vector"] = str(path)
    atomic_write_json(folder / "report.json", report)
    return report
