"""Figures of the analyses: plotly HTML (interactive) and matplotlib PNG (static), written atomically.

Plotly's PNG export needs kaleido, which we do not depend on, so PNGs are
drawn with matplotlib's object API (no pyplot state). Every `save_*` writes
`<stem>.html` and `<stem>.png` and returns both paths; the HTML files load
plotly.js from a `plotly.min.js` written once beside them (works offline).

Example:
    >>> save_heatmap(np.eye(2), ["a", "b"], ["0", "1"], "demo", "out", "demo")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from matplotlib.figure import Figure

from interp.store.atomic import atomic_path

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")

#: a series for `save_lines`: x, estimate, low, high
Series = tuple[Sequence[float], Sequence[float], Sequence[float], Sequence[float]]


def _write(html_fig: go.Figure, png_fig: Figure, out_dir: str | Path, stem: str) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html, png = out / f"{stem}.html", out / f"{stem}.png"
    with atomic_path(html) as tmp:
        html_fig.write_html(str(tmp), include_plotlyjs="directory")
    with atomic_path(png) as tmp:
        png_fig.savefig(str(tmp), format="png", dpi=120, bbox_inches="tight")
    return [html, png]


def save_heatmap(values: np.ndarray, x_labels: Sequence[str], y_labels: Sequence[str], title: str,
                 out_dir: str | Path, stem: str, colorbar: str = "recovered fraction",
                 nan_note: str = "not measured") -> list[Path]:
    """A diverging heat map centred on 0, NaN cells grey with `nan_note` on hover.

    Args:
        values: [rows, cols].
        x_labels: column labels (e.g. tokens).
        y_labels: row labels (e.g. layers).
        title: figure title.
        out_dir: folder to write into.
        stem: file name without extension.
        colorbar: colour bar title.
        nan_note: what a NaN cell means.

    Example:
        >>> save_heatmap(np.array([[0.1, np.nan]]), ["a", "b"], ["L0"], "t", "out", "m")  # doctest: +SKIP
    """
    finite = values[np.isfinite(values)]
    bound = float(max(np.abs(finite).max(), 1e-9)) if finite.size else 1.0
    xs = [f"{i}:{label}" for i, label in enumerate(x_labels)]  # unique categories
    hover = np.where(np.isfinite(values), np.vectorize(lambda v: f"{v:.3f}")(np.nan_to_num(values)), nan_note)
    fig = go.Figure(go.Heatmap(z=values, x=xs, y=list(y_labels), zmin=-bound, zmax=bound, colorscale="RdBu",
                               reversescale=True, customdata=hover, colorbar={"title": colorbar},
                               hovertemplate="%{y} · %{x}: %{customdata}<extra></extra>"))
    fig.update_layout(title=title, plot_bgcolor="#d9d9d9", xaxis={"tickangle": -60},
                      height=max(350, 18 * len(y_labels) + 200), width=max(600, 28 * len(x_labels) + 250))
    png = Figure(figsize=(max(6.0, 0.32 * len(x_labels) + 2.5), max(4.0, 0.22 * len(y_labels) + 1.5)))
    ax = png.subplots()
    ax.set_facecolor("#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto",
                      interpolation="nearest")
    ax.set_xticks(range(len(x_labels)), list(x_labels), rotation=70, fontsize=7)
    ax.set_yticks(range(len(y_labels)), list(y_labels), fontsize=7)
    ax.set_title(title, fontsize=9)
    png.colorbar(image, ax=ax, label=colorbar)
    return _write(fig, png, out_dir, stem)


def save_lines(series: Mapping[str, Series], title: str, x_title: str, y_title: str,
               out_dir: str | Path, stem: str) -> list[Path]:
    """Lines with 95% CI bands, one per series, and a zero line.

    Example:
        >>> save_lines({"attn": ([0, 1], [0.1, 0.2], [0, 0.1], [0.2, 0.3])}, "t", "layer", "y", "out", "l")  # doctest: +SKIP
    """
    fig = go.Figure()
    png = Figure(figsize=(7.0, 4.0))
    ax = png.subplots()
    for i, (name, (x, est, lo, hi)) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        xs = list(x)
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=list(hi) + list(lo)[::-1], fill="toself", fillcolor=color,
                                 opacity=0.2, line={"width": 0}, hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=xs, y=list(est), name=name, line={"color": color}, mode="lines+markers"))
        ax.fill_between(xs, list(lo), list(hi), color=color, alpha=0.2, linewidth=0)
        ax.plot(xs, list(est), marker="o", markersize=3, color=color, label=name)
    fig.add_hline(y=0, line={"color": "grey", "dash": "dot"})
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title)
    ax.axhline(0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(x_title)
    ax.set_ylabel(y_title)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return _write(fig, png, out_dir, stem)


def save_ablation(ks: Sequence[int], modes: Sequence[str], top: Mapping[str, Series],
                  random: Mapping[str, tuple[Sequence[int], Sequence[float]]], title: str,
                  out_dir: str | Path, stem: str) -> list[Path]:
    """Change in deference against k: top-k heads (CI bars) next to each random draw (dots).

    Args:
        ks: the k values.
        modes: ablation modes, one colour each.
        top: per mode (k, delta, lo, hi) of the top-k ablation.
        random: per mode (k of each draw, delta of each draw).
        title: figure title.
        out_dir: folder to write into.
        stem: file name without extension.
    """
    fig = go.Figure()
    png = Figure(figsize=(7.0, 4.0))
    ax = png.subplots()
    for i, mode in enumerate(modes):
        color = PALETTE[i % len(PALETTE)]
        x, est, lo, hi = (np.asarray(a, dtype=float) for a in top[mode])
        shift = 0.08 * (i - (len(modes) - 1) / 2)
        fig.add_trace(go.Scatter(x=x + shift, y=est, mode="markers+lines", name=f"top-k, {mode}",
                                 line={"color": color}, error_y={"type": "data", "symmetric": False,
                                                                 "array": hi - est, "arrayminus": est - lo}))
        rk, rd = random[mode]
        fig.add_trace(go.Scatter(x=np.asarray(rk, dtype=float) + shift + 0.03, y=list(rd), mode="markers",
                                 name=f"random k, {mode}", marker={"color": color, "symbol": "circle-open"}))
        ax.errorbar(x + shift, est, yerr=[est - lo, hi - est], color=color, marker="o", capsize=3,
                    label=f"top-k, {mode}")
        ax.scatter(np.asarray(rk, dtype=float) + shift + 0.03, rd, facecolors="none", edgecolors=color, s=14,
                   label=f"random k, {mode}")
    fig.add_hline(y=0, line={"color": "grey", "dash": "dot"})
    fig.update_layout(title=title, xaxis_title="k (heads ablated)", yaxis_title="change in deference (logits)",
                      xaxis={"type": "log", "tickvals": list(ks)})
    ax.axhline(0, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xticks(list(ks), [str(k) for k in ks])
    ax.set_xlabel("k (heads ablated)")
    ax.set_ylabel("change in deference (logits)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _write(fig, png, out_dir, stem)
