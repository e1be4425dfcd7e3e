"""Plots of probe results: interactive plotly HTML plus a static matplotlib PNG.

Plotly's PNG export needs kaleido, which we do not depend on, so every PNG is
drawn with matplotlib (object API, no pyplot state). Each `save_*` writes
`<stem>.html` and `<stem>.png` atomically and returns both paths.

Example:
    >>> from probes.report import ProbeReport
    >>> paths = save_layer_curves(ProbeReport.load("probe_report.json").to_frame(),
    ...                           "plots", "pressure", "last_prompt")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure
from plotly.subplots import make_subplots

from interp.store.atomic import atomic_path

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
METRICS: tuple[tuple[str, str, str], ...] = (
    ("acc", "control_acc", "held-out accuracy"),
    ("auroc", "control_auroc", "held-out AUROC"),
)


def _write(
    fig_html: go.Figure, fig_png: Figure, out_dir: str | Path, stem: str, plotlyjs: bool | str
) -> tuple[Path, Path]:
    out = Path(out_dir)
    html, png = out / f"{stem}.html", out / f"{stem}.png"
    with atomic_path(html) as tmp:
        fig_html.write_html(str(tmp), include_plotlyjs=plotlyjs)
    with atomic_path(png) as tmp:
        fig_png.savefig(str(tmp), format="png", dpi=120, bbox_inches="tight")
    return html, png


def _curve_rows(frame: pd.DataFrame, label_source: str, position: str, site_suffix: str) -> pd.DataFrame:
    rows = frame[(frame["label_source"] == label_source) & (frame["position"] == position)]
    rows = rows[rows["site"].str.endswith(site_suffix)].sort_values(["method", "layer"])
    if rows.empty:
        raise ValueError(f"no rows for label source {label_source!r}, position {position!r}, sites *{site_suffix}")
    if rows.duplicated(["method", "layer"]).any():
        raise ValueError("several sites per layer: pass a more specific site_suffix")
    return rows


def layer_curves_figure(
    frame: pd.DataFrame, label_source: str, position: str, site_suffix: str = "hook_resid_post"
) -> go.Figure:
    """Accuracy and AUROC against layer: a line per method, CI band, control dashed, chance line.

    Args:
        frame: ProbeReport.to_frame().
        label_source: which label source to plot.
        position: which position to plot.
        site_suffix: keep sites ending with this (one site per layer).

    Example:
        >>> fig = layer_curves_figure(report.to_frame(), "pressure", "last_prompt")  # doctest: +SKIP
    """
    rows = _curve_rows(frame, label_source, position, site_suffix)
    fig = make_subplots(rows=1, cols=2, subplot_titles=[m[2] for m in METRICS])
    for i, method in enumerate(dict.fromkeys(rows["method"])):
        r = rows[rows["method"] == method]
        color = PALETTE[i % len(PALETTE)]
        x = r["layer"].tolist()
        for col, (metric, control, _) in enumerate(METRICS, start=1):
            fig.add_trace(
                go.Scatter(
                    x=x + x[::-1],
                    y=r[f"{metric}_high"].tolist() + r[f"{metric}_low"].tolist()[::-1],
                    fill="toself",
                    fillcolor=color,
                    opacity=0.15,
                    line={"width": 0},
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=method,
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=r[metric],
                    mode="lines+markers",
                    name=method,
                    line={"color": color},
                    legendgroup=method,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
            if r[control].notna().any():
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=r[control],
                        mode="lines",
                        name=f"{method} control",
                        line={"color": color, "dash": "dash"},
                        legendgroup=method,
                        showlegend=col == 1,
                    ),
                    row=1,
                    col=col,
                )
    majority = float(rows["majority_acc"].iloc[0])
    fig.add_hline(y=majority, line_dash="dot", line_color="gray", annotation_text="majority class", row=1, col=1)
    fig.add_hline(y=0.5, line_dash="dot", line_color="gray", annotation_text="chance", row=1, col=2)
    fig.update_xaxes(title_text="layer")
    fig.update_layout(title=f"{label_source} probes at {position}", template="plotly_white")
    return fig


def layer_curves_png(
    frame: pd.DataFrame, label_source: str, position: str, site_suffix: str = "hook_resid_post"
) -> Figure:
    """The matplotlib twin of `layer_curves_figure`.

    Example:
        >>> fig = layer_curves_png(report.to_frame(), "pressure", "last_prompt")  # doctest: +SKIP
    """
    rows = _curve_rows(frame, label_source, position, site_suffix)
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    for i, method in enumerate(dict.fromkeys(rows["method"])):
        r = rows[rows["method"] == method]
        color = PALETTE[i % len(PALETTE)]
        for ax, (metric, control, _) in zip(axes, METRICS, strict=True):
            ax.fill_between(r["layer"], r[f"{metric}_low"], r[f"{metric}_high"], color=color, alpha=0.15, linewidth=0)
            ax.plot(r["layer"], r[metric], "-o", color=color, markersize=3, label=method)
            if r[control].notna().any():
                ax.plot(r["layer"], r[control], "--", color=color, linewidth=1, label=f"{method} control")
    axes[0].axhline(float(rows["majority_acc"].iloc[0]), color="gray", linestyle=":", label="majority class")
    axes[1].axhline(0.5, color="gray", linestyle=":", label="chance")
    for ax, (_, _, title) in zip(axes, METRICS, strict=True):
        ax.set_xlabel("layer")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{label_source} probes at {position}")
    return fig


def save_layer_curves(
    frame: pd.DataFrame,
    out_dir: str | Path,
    label_source: str,
    position: str,
    site_suffix: str = "hook_resid_post",
    stem: str | None = None,
    plotlyjs: bool | str = True,
) -> tuple[Path, Path]:
    """Write the per-layer curves as HTML (plotly) and PNG (matplotlib).

    Args:
        frame: ProbeReport.to_frame().
        out_dir: folder to write into.
        label_source: which label source.
        position: which position.
        site_suffix: keep sites ending with this.
        stem: file name without extension (default "layers_<source>_<position>").
        plotlyjs: plotly.js in the HTML: True embeds it (works offline), "cdn" links it.

    Example:
        >>> save_layer_curves(report.to_frame(), "out", "pressure", "last_prompt")  # doctest: +SKIP
    """
    stem = stem or f"layers_{label_source}_{position}"
    return _write(
        layer_curves_figure(frame, label_source, position, site_suffix),
        layer_curves_png(frame, label_source, position, site_suffix),
        out_dir,
        stem,
        plotlyjs,
    )


def save_heatmap(
    table: pd.DataFrame,
    out_dir: str | Path,
    stem: str,
    title: str,
    vmin: float = -1.0,
    vmax: float = 1.0,
    plotlyjs: bool | str = True,
) -> tuple[Path, Path]:
    """Write a labelled square or rectangular table as a heatmap (HTML and PNG).

    Args:
        table: values with labelled index (rows) and columns.
        out_dir: folder to write into.
        stem: file name without extension.
        title: plot title.
        vmin: bottom of the colour scale.
        vmax: top of the colour scale.
        plotlyjs: plotly.js in the HTML: True embeds it (works offline), "cdn" links it.

    Example:
        >>> gm = generalisation_matrix(probe, X, y, groups, tasks)  # doctest: +SKIP
        >>> save_heatmap(gm.pivot(index="train", columns="test", values="auroc"), "out", "transfer", "AUROC", 0, 1)  # doctest: +SKIP
    """
    rows, cols = [str(v) for v in table.index], [str(v) for v in table.columns]
    values = table.to_numpy(dtype=np.float64)  # [rows, cols]
    annotate = max(len(rows), len(cols)) <= 12  # small tables show their numbers in the cells
    html = go.Figure(go.Heatmap(z=values, x=cols, y=rows, zmin=vmin, zmax=vmax, colorscale="RdBu_r",
                                texttemplate="%{z:.2f}" if annotate else None))
    html.update_layout(title=title, template="plotly_white", yaxis={"autorange": "reversed"})
    png = Figure(figsize=(max(4.0, 1.5 + 0.35 * len(cols)), max(3.0, 1 + 0.35 * len(rows))))
    ax = png.subplots()
    image = ax.imshow(values, vmin=vmin, vmax=vmax, cmap="RdBu_r")
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    if annotate:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    ax.set_title(title, fontsize=8, wrap=True)
    png.colorbar(image, ax=ax)
    return _write(html, png, out_dir, stem, plotlyjs)


def save_cosine_heatmap(
    table: pd.DataFrame, out_dir: str | Path, stem: str, title: str = "cosine similarity", plotlyjs: bool | str = True
) -> tuple[Path, Path]:
    """Write a cosine-similarity table (geometry.method_cosines / layer_cosines) as a heatmap.

    Example:
        >>> save_cosine_heatmap(layer_cosines(dirs, "logreg"), "out", "cos_layers")  # doctest: +SKIP
    """
    return save_heatmap(table, out_dir, stem, title, -1.0, 1.0, plotlyjs)


def save_projection_histograms(
    frame: pd.DataFrame,
    out_dir: str | Path,
    stem: str,
    title: str = "projection on the direction",
    column: str = "projection",
    bins: int = 40,
    plotlyjs: bool | str = True,
) -> tuple[Path, Path]:
    """Overlaid histograms of projections per condition (geometry.projections_by_condition).

    Example:
        >>> save_projection_histograms(projections_by_condition(d, X, conds), "out", "proj")  # doctest: +SKIP
    """
    values = frame[column].to_numpy(dtype=np.float64)
    edges = np.histogram_bin_edges(values, bins=bins)
    html = go.Figure()
    png = Figure(figsize=(7, 4))
    ax = png.subplots()
    for i, (condition, part) in enumerate(frame.groupby("condition", sort=True)):
        color = PALETTE[i % len(PALETTE)]
        html.add_trace(
            go.Histogram(
                x=part[column],
                name=str(condition),
                opacity=0.55,
                marker_color=color,
                xbins={"start": edges[0], "end": edges[-1], "size": edges[1] - edges[0]},
            )
        )
        ax.hist(part[column], bins=edges.tolist(), alpha=0.5, color=color, label=f"{condition} (n={len(part)})")
    html.update_layout(barmode="overlay", title=title, xaxis_title=column, template="plotly_white")
    ax.set_xlabel(column)
    ax.set_ylabel("examples")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _write(html, png, out_dir, stem, plotlyjs)
