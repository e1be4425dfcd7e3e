"""Plotly figures the pages draw from tables the packages wrote (drawing only: no statistics here).

The probe curves come from `probes.plots.layer_curves_figure`; the figures
below cover what the packages have no figure builder for (they write static
files instead): heat maps of labelled tables, the profile's effects, the
projections by condition, the per-token projections of the playground, and
the trade-off curves.

Example:
    >>> fig = heatmap(cosines, "cosine between methods", -1, 1)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from steering.sweep.report import COLORS, PROMPT_COLORS

#: the sweep report's colours (and its prompting baseline's levels): a method looks the same in the app and report
PALETTE = COLORS

TEMPLATE = "plotly_white"


def heatmap(table: pd.DataFrame, title: str, zmin: float, zmax: float, colorbar: str = "",
            text: bool = True) -> go.Figure:
    """A labelled table as a heat map (rows top to bottom), values written in the cells of small tables."""
    values = table.to_numpy(dtype=np.float64)  # [rows, cols]
    text = text and values.size <= 144
    fig = go.Figure(go.Heatmap(
        z=values, x=[str(c) for c in table.columns], y=[str(r) for r in table.index], zmin=zmin, zmax=zmax,
        colorscale="RdBu_r", colorbar={"title": colorbar},
        text=np.round(values, 2) if text else None, texttemplate="%{text}" if text else None,
        hovertemplate="row %{y}<br>column %{x}<br>value %{z:.3f}<extra></extra>",
    ))
    fig.update_layout(title=title, template=TEMPLATE, yaxis={"autorange": "reversed", "type": "category"},
                      xaxis={"type": "category"}, height=min(640, max(320, 60 + 38 * len(table.index))))
    return fig


def effects_figure(effects: Mapping[str, pd.DataFrame], title: str) -> go.Figure:
    """Bars with 95% CIs: per effect, the user's shift, the third-party control's shift and their difference.

    Args:
        effects: run name -> rows with columns effect, metric (shift, control_shift, deference),
            estimate, low, high.
        title: figure title.
    """
    labels = {"shift": "user's opinion", "control_shift": "third-party control", "deference": "deference (difference)"}
    fig = go.Figure()
    for i, (run, frame) in enumerate(effects.items()):
        for j, (metric, label) in enumerate(labels.items()):
            part = frame[frame["metric"] == metric]
            if part.empty:
                continue
            name = label if len(effects) == 1 else f"{run}: {label}"
            fig.add_trace(go.Bar(
                x=part["effect"], y=part["estimate"], name=name,
                marker={"color": PALETTE[j], "opacity": 1.0 if i == 0 else 0.45,
                        "line": {"color": PALETTE[j], "width": 1.5}},
                error_y={"type": "data", "symmetric": False, "array": part["high"] - part["estimate"],
                         "arrayminus": part["estimate"] - part["low"]},
                hovertemplate="%{x}<br>%{y:.3f}<extra>" + name + "</extra>",
            ))
    fig.add_hline(y=0, line_color="gray", line_width=1)
    fig.update_layout(title=title, barmode="group", template=TEMPLATE, yaxis_title="shift toward what the pressure pushes",
                      legend={"orientation": "h", "y": -0.2})
    return fig


def projection_figure(frame: pd.DataFrame, column: str = "projection", title: str = "") -> go.Figure:
    """One horizontal box (with points) per condition: where each condition's examples fall on the direction."""
    fig = go.Figure()
    for i, (condition, part) in enumerate(frame.groupby("condition", sort=True)):
        fig.add_trace(go.Box(x=part[column], name=f"{condition} (n={len(part)})", boxpoints="all", jitter=0.4,
                             pointpos=0, marker={"color": PALETTE[i % len(PALETTE)], "size": 5},
                             line={"color": PALETTE[i % len(PALETTE)]}, orientation="h",
                             hovertext=part.get("id"), hoverinfo="x+text"))
    fig.update_layout(title=title, template=TEMPLATE, showlegend=False, xaxis_title=column,
                      height=max(320, 70 + 40 * frame["condition"].nunique()))
    return fig


def token_heatmap(tokens: Sequence[str], layers: Sequence[int], values: np.ndarray, chosen: int | None,
                  n_prompt: int, title: str) -> go.Figure:
    """Per-token projection [layers, tokens] as a heat map; the steered layer and the prompt's end marked.

    The colour scale spans the 99th percentile of |value| over the tokens after the first (the first
    token's residual is often orders of magnitude larger, an attention sink); larger values saturate.
    """
    rest = np.abs(values[:, 1:] if values.shape[1] > 1 else values)
    bound = float(np.percentile(rest, 99)) if rest.size else 1.0
    bound = bound if bound > 0 else 1.0
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]  # unique categories
    fig = go.Figure(go.Heatmap(
        z=values, x=labels, y=[f"L{layer}" for layer in layers], zmin=-bound, zmax=bound, colorscale="RdBu_r",
        colorbar={"title": "projection"}, hovertemplate="token %{x}<br>layer %{y}<br>%{z:.3f}<extra></extra>",
    ))
    if chosen is not None and chosen in layers:
        fig.add_hline(y=list(layers).index(chosen), line_color="black", line_width=1, line_dash="dot")
    if 0 < n_prompt < len(tokens):
        fig.add_vline(x=n_prompt - 0.5, line_color="black", line_width=2)
        fig.add_annotation(x=n_prompt - 0.5, y=1.02, yref="paper", text="answer →", showarrow=False, xanchor="left")
    fig.update_layout(title=title, template=TEMPLATE, xaxis={"tickangle": -60, "type": "category"},
                      yaxis={"type": "category"}, height=max(300, 120 + 22 * len(layers)))
    return fig


# -- trade-off -------------------------------------------------------------------------------------

AXES = {"norm": "vector norm |strength| × |v| (signed: < 0 subtracts)",
        "relative_norm": "fraction of the residual norm (signed: < 0 subtracts)"}


def tradeoff_curves(table: pd.DataFrame, gain: str, loss: str, x: str, title: str,
                    prompts: pd.DataFrame | None = None) -> go.Figure:
    """Gain (left) and loss (right) against the signed norm, with each curve's law fit and R², and the prompting
    baseline as reference levels.

    One curve per (layers, positions, sign of the strength); the fits are
    `steering.sweep.fits.fit_curve` against the norm (gain linear, loss quadratic, as
    Wolf et al. predict), drawn in units of `x` ("norm" or "relative_norm"). Each prompt-only cell
    (`steering.sweep.fits.prompt_cells`: a system prompt, no vector, so no norm) is a dotted horizontal line
    at its gain and its loss, labelled with its method.

    Args:
        table: the cells of one method (its curves).
        gain, loss: the columns drawn.
        x: "norm" or "relative_norm".
        title: the figure's title.
        prompts: prompt-only cells drawn as reference levels (None: none).
    """
    from plotly.subplots import make_subplots

    from app.sweep_tables import layer_text
    from steering.sweep.fits import LAWS, curve_fits

    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"gain: {gain} ({LAWS['gain'][0]} fit)",
                                                        f"loss: {loss} ({LAWS['loss'][0]} fit)"])
    layers = sorted(table["layer"].unique())
    for (layer, positions, direction), fitted in curve_fits(table, gain, loss, by=("layer", "positions", "direction")):
        sign = -1.0 if direction == "subtract" else 1.0
        g = fitted[0].rows
        scale = 1.0
        if x == "relative_norm":
            resid = g["resid_norm"].replace(0, np.nan).dropna()
            scale = 1.0 / float(resid.iloc[0]) if len(resid) else float("nan")
        color = PALETTE[layers.index(layer) % len(PALETTE)]
        label = f"{layer_text(g.iloc[0])} {positions}"
        for col, curve in enumerate(fitted, start=1):
            column, norm, y, fit, grid = curve.column, curve.norm, curve.y, curve.fit, curve.grid
            err = {"type": "data", "symmetric": False, "array": (g[f"{column}_high"] - g[column]).to_numpy(),
                   "arrayminus": (g[column] - g[f"{column}_low"]).to_numpy()} if f"{column}_low" in g else None
            fig.add_trace(go.Scatter(
                x=sign * norm * scale, y=y, mode="markers", marker={"color": color, "size": 7}, error_y=err,
                name=label, legendgroup=label, showlegend=col == 1 and direction == "subtract",
                customdata=g["strength"], hovertemplate="strength %{customdata:+g}<br>x %{x:.3g}<br>%{y:.4f}"
                                                        f"<extra>{label}</extra>"), row=1, col=col)
            if np.isfinite(fit.r2):
                fig.add_trace(go.Scatter(
                    x=sign * grid * scale, y=fit.predict(grid), mode="lines", legendgroup=label, showlegend=False,
                    line={"color": color, "dash": "solid" if positions == "generated" else "dash"},
                    hovertemplate=f"{LAWS[curve.what][0]} fit, R² = {fit.r2:.2f}<extra>{label} {direction}</extra>"),
                    row=1, col=col)
    for col in (1, 2):
        fig.add_hline(y=0, line_color="gray", line_width=1, row=1, col=col)
        fig.add_vline(x=0, line_color="gray", line_width=1, row=1, col=col)
    for k, cell in enumerate((prompts if prompts is not None else table.iloc[0:0]).itertuples()):
        color = PROMPT_COLORS[k % len(PROMPT_COLORS)]
        for col, column in enumerate((gain, loss), start=1):
            value = float(getattr(cell, column))
            if np.isfinite(value):
                fig.add_hline(y=value, line_dash="dot", line_color=color, line_width=2, row=1, col=col,
                              annotation_text=f"{cell.method} (no vector)", annotation_position="top left",
                              annotation_font_color=color)
    fig.update_xaxes(title_text=AXES[x])
    fig.update_layout(title=title, template=TEMPLATE, height=430, legend={"title": "layers, positions"})
    return fig


def pareto_figure(table: pd.DataFrame, frontier: pd.DataFrame, gain: str, loss: str, budget: float,
                  point: pd.Series | None, others: Mapping[str, pd.DataFrame] | None = None) -> go.Figure:
    """Every cell's (loss, gain) by method, the Pareto frontier, the budget and the recommended point.

    The prompting baseline's cells (a system prompt, no vector: `steering.sweep.fits.prompt_cells`) are diamonds.
    `others`: frontiers of comparison runs, drawn dashed.
    """
    from app.sweep_tables import layer_text
    from steering.sweep.fits import prompt_cells

    prompts = set(prompt_cells(table)["method"])
    fig = go.Figure()
    for i, (method, g) in enumerate(table.groupby("method", sort=True)):
        prompt = method in prompts
        where = ["no vector" if prompt else f"{layer_text(r)}, strength {r['strength']:+g}, {r['positions']}"
                 for _, r in g.iterrows()]
        fig.add_trace(go.Scatter(
            x=g[loss], y=g[gain], mode="markers", name=f"{method} (prompt, no vector)" if prompt else str(method),
            marker={"color": PALETTE[i % len(PALETTE)], "symbol": "diamond" if prompt else "circle",
                    "size": 14 if prompt else 8, "line": {"color": "black", "width": 1.5 if prompt else 0}},
            customdata=g["relative_norm"], text=where,
            hovertemplate="%{text}<br>%{customdata:.0%} of the residual norm<br>loss %{x:.4f}, gain %{y:.4f}"
                          f"<extra>{method}</extra>"))
    fig.add_trace(go.Scatter(x=frontier[loss], y=frontier[gain], mode="lines", name="Pareto frontier",
                             line={"color": "black", "width": 2}, hoverinfo="skip"))
    for name, front in (others or {}).items():
        fig.add_trace(go.Scatter(x=front[loss], y=front[gain], mode="lines", name=f"frontier of {name}",
                                 line={"color": "gray", "dash": "dash"}, hoverinfo="skip"))
    fig.add_vline(x=budget, line_dash="dot", line_color="#444", annotation_text=f"budget {budget:.3g}")
    if point is not None:
        fig.add_trace(go.Scatter(x=[point[loss]], y=[point[gain]], mode="markers", name="recommended",
                                 marker={"symbol": "star", "size": 20, "color": "gold", "line": {"width": 1}}))
    fig.add_hline(y=0, line_color="gray", line_width=1)
    fig.update_layout(title="Pareto frontier across methods, layers and positions", template=TEMPLATE,
                      xaxis_title=f"helpfulness loss: {loss} (lower is better)",
                      yaxis_title=f"alignment gain: {gain} (higher is better)", height=480)
    return fig


def task_bars(row: pd.Series, columns: Sequence[str], title: str,
              references: pd.DataFrame | None = None) -> go.Figure:
    """One cell's metrics with 95% CIs, one bar per column (e.g. each task's shift gain).

    `references`: other cells (the prompting baseline) drawn as diamonds on the same columns, one trace each.
    """
    shown = [c for c in columns if c in row.index and np.isfinite(row[c])]
    values = np.array([float(row[c]) for c in shown])
    low = np.array([float(row.get(f"{c}_low", np.nan)) for c in shown])
    high = np.array([float(row.get(f"{c}_high", np.nan)) for c in shown])
    colors = [PALETTE[3] if c.endswith("_change") else PALETTE[0] for c in shown]
    fig = go.Figure(go.Bar(x=shown, y=values, marker_color=colors, name=str(row.get("method", "cell")),
                           error_y={"type": "data", "symmetric": False, "array": high - values,
                                    "arrayminus": values - low}))
    for k, (_, ref) in enumerate((references if references is not None else pd.DataFrame()).iterrows()):
        fig.add_trace(go.Scatter(x=shown, y=[float(ref.get(c, np.nan)) for c in shown], mode="markers",
                                 name=f"{ref['method']} (no vector)",
                                 marker={"symbol": "diamond", "size": 12, "color": PROMPT_COLORS[k % len(PROMPT_COLORS)],
                                         "line": {"color": "black", "width": 1}}))
    fig.add_hline(y=0, line_color="gray", line_width=1)
    fig.update_layout(title=title, template=TEMPLATE, height=380, yaxis_title="change vs unsteered (95% CI)")
    return fig


# -- mechanisms ------------------------------------------------------------------------------------


def band_lines(frame: pd.DataFrame, x: str, y: str, group: str, title: str, y_title: str,
               low: str | None = None, high: str | None = None) -> go.Figure:
    """One line per `group` value with its CI band (`<y>_lo`/`<y>_hi` unless given)."""
    low, high = low or f"{y}_lo", high or f"{y}_hi"
    fig = go.Figure()
    for i, (name, part) in enumerate(frame.groupby(group, sort=False)):
        part = part.sort_values(x)
        color = PALETTE[i % len(PALETTE)]
        xs = part[x].tolist()
        if low in part and high in part:
            fig.add_trace(go.Scatter(x=xs + xs[::-1], y=part[high].tolist() + part[low].tolist()[::-1],
                                     fill="toself", fillcolor=color, opacity=0.15, line={"width": 0},
                                     hoverinfo="skip", showlegend=False, legendgroup=str(name)))
        fig.add_trace(go.Scatter(x=xs, y=part[y], mode="lines+markers", name=str(name), line={"color": color},
                                 legendgroup=str(name)))
    fig.add_hline(y=0, line_color="gray", line_width=1)
    fig.update_layout(title=title, template=TEMPLATE, xaxis_title=x, yaxis_title=y_title, height=400)
    return fig


def grid_heatmap(frame: pd.DataFrame, rows: str, cols: str, values: str, title: str, colorbar: str,
                 col_labels: Sequence[str] | None = None) -> go.Figure:
    """A long table pivoted to rows × cols, diverging colours centred on 0 (NaN cells left blank)."""
    table = frame.pivot(index=rows, columns=cols, values=values).sort_index()
    if col_labels is not None:
        table.columns = [f"{c}:{col_labels[int(c)]}" if 0 <= int(c) < len(col_labels) else str(c)
                         for c in table.columns]
    finite = table.to_numpy(dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    table.index = [f"L{r}" if rows == "layer" else str(r) for r in table.index]
    return heatmap(table, title, -bound, bound, colorbar, text=False)
