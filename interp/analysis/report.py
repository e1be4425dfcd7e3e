"""The batch analyses behind `workbench analyze`: a registry, each writing tables, figures and a summary.

| analysis   | tables (Parquet)                                   | figures (HTML + PNG)                      |
| ---------- | -------------------------------------------------- | ----------------------------------------- |
| `dla`      | dla_logit_lens                                     | dla_projection, dla_lens_logit_diff       |
| `patching` | patching_resid, patching_layers, patching_claim, patching_pairs | patching_heatmap, patching_layers |
| `heads`    | heads_ranking, heads_ablation                      | heads_proj_diff, heads_attn_claim, heads_ablation |

Each also writes `<analysis>_summary.json` (numbers with 95% cluster-bootstrap
intervals, the direction's source, the pairs used and skipped). A heads run
ranked by anything but `proj_diff` tags its ablation files and summary
`_by_<ranking>` (e.g. `heads_ablation_by_dla_diff.png`), so both rankings can
live in one run folder.

Example:
    >>> ctx = AnalysisContext(model, contrast_set, AnalysisConfig(what="dla"), None, "", Path("out"))  # doctest: +SKIP
    >>> ANALYSES["dla"](ctx)["files"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from interp.analysis.ablation import ablation_study
from interp.analysis.contrasts import ContrastSet
from interp.analysis.dla import direction_dla, logit_lens
from interp.analysis.figures import save_ablation, save_heatmap, save_lines
from interp.analysis.heads import RANKINGS, SPANS, collect_heads, score_heads, top_heads
from interp.analysis.patching import SUFFIX, run_patching
from interp.analysis.residuals import LastResiduals, collect_last, mean_diff_direction
from interp.analysis.summary import ci_fields
from interp.store.atomic import atomic_path, atomic_write_json

if TYPE_CHECKING:
    from interp.models.loading import ChatModel

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class AnalysisConfig:
    """Options of one analysis run.

    Args:
        what: a key of ANALYSES.
        layer: the direction's layer (`blocks.L.hook_resid_post`); None: 2/3 of the depth.
        ks: numbers of heads to ablate (heads).
        n_random: random head draws per k (heads).
        seed: seeds the random heads.
        span: where heads are ablated, a key of `interp.analysis.heads.SPANS`.
        rank_by: head ranking, a key of `interp.analysis.heads.RANKINGS`.
        top_tokens: promoted/suppressed tokens listed (dla).
    """

    what: str
    layer: int | None = None
    ks: tuple[int, ...] = (1, 5, 20)
    n_random: int = 8
    seed: int = 0
    span: str = "suffix"
    rank_by: str = "proj_diff"
    top_tokens: int = 15

    def __post_init__(self) -> None:
        for value, known, option in ((self.what, ANALYSES, "analysis"), (self.rank_by, RANKINGS, "ranking"),
                                     (self.span, SPANS, "span")):
            if value not in known:
                raise ValueError(f"unknown {option} {value!r}; choose from {', '.join(known)}")
        if not self.ks or min(self.ks) < 1 or self.n_random < 0:
            raise ValueError(f"ks must be positive integers and n_random >= 0, got {self.ks}, {self.n_random}")

    def direction_layer(self, n_layers: int) -> int:
        layer = (2 * n_layers) // 3 if self.layer is None else self.layer
        layer = layer + n_layers if layer < 0 else layer
        if not 0 <= layer < n_layers:
            raise ValueError(f"--layer {self.layer} outside 0..{n_layers - 1}")
        return layer


@dataclass(frozen=True)
class AnalysisContext:
    """Everything an analysis needs.

    Args:
        model: the model.
        contrast_set: the pairs (and the skipped ones).
        config: the options.
        direction: [d_model] raw direction, or None to compute the mean difference.
        direction_source: where `direction` came from (written to the summary).
        out_dir: the analysis folder (artifacts/<run>/analysis).
        progress: optional callback `(done, total)` per pair.
    """

    model: ChatModel
    contrast_set: ContrastSet
    config: AnalysisConfig
    direction: np.ndarray | None
    direction_source: str
    out_dir: Path
    progress: Progress | None = None


def _direction(ctx: AnalysisContext, last: LastResiduals) -> tuple[np.ndarray, dict[str, Any]]:
    layer = ctx.config.direction_layer(ctx.model.n_layers)
    if ctx.direction is not None:
        vector, source = np.asarray(ctx.direction, dtype=np.float32), ctx.direction_source
    else:
        vector = mean_diff_direction(last, layer)
        source = (f"mean difference (corrupt - clean) of blocks.{layer}.hook_resid_post at the last prompt "
                  f"position over the {len(last.pair_ids)} analysed pairs (computed here: no --direction given)")
    return vector, {"layer": layer, "source": source, "norm": float(np.linalg.norm(vector))}


def _table(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


def _finish(ctx: AnalysisContext, summary: dict[str, Any], files: list[Path], tag: str = "") -> dict[str, Any]:
    summary = {
        "analysis": ctx.config.what, "config": asdict(ctx.config),
        "pairs": [c.pair_id for c in ctx.contrast_set.contrasts],
        "skipped": ctx.contrast_set.skipped, **summary,
    }
    path = ctx.out_dir / f"{ctx.config.what}{tag}_summary.json"
    summary["files"] = [p.name for p in [*files, path]]
    atomic_write_json(path, summary)
    return summary


def _series(frame: pd.DataFrame, column: str) -> tuple[list[float], list[float], list[float], list[float]]:
    return (frame["layer"].tolist(), frame[column].tolist(), frame[f"{column}_lo"].tolist(),
            frame[f"{column}_hi"].tolist())


def analyze_dla(ctx: AnalysisContext) -> dict[str, Any]:
    """Direction DLA (promoted/suppressed tokens, effect on the answer tokens) and a logit lens."""
    model, contrasts = ctx.model, ctx.contrast_set.contrasts
    last = collect_last(model, contrasts, progress=ctx.progress)
    vector, direction = _direction(ctx, last)
    reference = last.final.reshape(-1, model.d_model)  # [pairs * 2, d_model]
    dla = direction_dla(model, vector, reference, top_k=ctx.config.top_tokens,
                        correct=np.repeat(last.correct, 2), user=np.repeat(last.user, 2))
    lens = logit_lens(model, last, vector).table()
    out, files = ctx.out_dir, [_table(lens, ctx.out_dir / "dla_logit_lens.parquet")]
    by = {name: lens[lens.condition == name] for name in ("clean", "corrupt", "diff")}
    files += save_lines({name: _series(frame, "proj") for name, frame in by.items()},
                        f"projection on the direction (layer {direction['layer']}) at the last prompt position",
                        "layer (resid_post)", "residual · unit direction", out, "dla_projection")
    files += save_lines({name: _series(frame, "lens_ld") for name, frame in by.items()},
                        "logit lens: logit[correct] - logit[user] at the last prompt position",
                        "layer (resid_post)", "logit difference", out, "dla_lens_logit_diff")
    assert dla.toward_user is not None
    groups = np.repeat(np.array(last.pair_ids), 2)
    return _finish(ctx, {"direction": direction, "dla": dla.to_dict(),
                         "dla_toward_user": ci_fields("toward_user", dla.toward_user, groups),
                         "approximation": "first-order: final norm linearised (Jacobian) at the actual final "
                                          "residual of each prompt's last position; direct path only"}, files)


def analyze_patching(ctx: AnalysisContext) -> dict[str, Any]:
    """Residual patching per (layer, position), attn/MLP per layer, claim-edge knockouts."""
    model = ctx.model
    result = run_patching(model, ctx.contrast_set.contrasts, progress=ctx.progress,
                          cache_dir=ctx.out_dir / ".cache" / "patching")
    tables = result.tables()
    out = ctx.out_dir
    files = [_table(frame, out / f"patching_{name}.parquet") for name, frame in tables.items()]
    labels = [s.label for s in result.slots]
    grid = tables["resid"].pivot(index="layer", columns="slot", values="fraction").to_numpy()
    knock = np.full(len(labels), np.nan)
    claim = tables["claim"][tables["claim"].slot >= 0]
    knock[claim.slot.to_numpy()] = claim.fraction.to_numpy()
    values = np.vstack([grid, knock[None]])
    rows = [f"L{layer}" for layer in range(model.n_layers)] + ["claim knockout"]
    files += save_heatmap(values, labels, rows,
                          f"recovered fraction: clean resid_post patched into the user-claim run "
                          f"({len(result.pair_ids)} pairs); last row: claim token hidden from the answer side",
                          out, "patching_heatmap",
                          nan_note="claim token: no clean counterpart (see the knockout row)")
    layers = tables["layers"]
    files += save_lines({name: _series(layers[layers.component == name], "fraction")
                         for name in ("attn", "mlp", "knockout")},
                        "recovered fraction per layer (attn/MLP output patched at the suffix; "
                        "knockout: claim hidden from the suffix at that layer)", "layer", "recovered fraction",
                        out, "patching_layers")
    resid = tables["resid"]
    best = resid[resid.kind == SUFFIX].sort_values("fraction", ascending=False).head(10)
    return _finish(ctx, {**result.summary(), "top_cells": best.to_dict(orient="records"),
                         "slots": labels}, files)


def analyze_heads(ctx: AnalysisContext) -> dict[str, Any]:
    """Head ranking (projection on the direction, DLA, attention to the claim) and top-k vs random ablation."""
    model, cfg, contrasts = ctx.model, ctx.config, ctx.contrast_set.contrasts
    data = collect_heads(model, contrasts, span=cfg.span, progress=ctx.progress)
    vector, direction = _direction(ctx, data.last)
    table = score_heads(data, vector, rank_by=cfg.rank_by)
    ablation = ablation_study(model, contrasts, top_heads(table, max(cfg.ks)), data.z_mean, ks=cfg.ks,
                              n_random=cfg.n_random, seed=cfg.seed, span=cfg.span, progress=ctx.progress)
    out = ctx.out_dir
    tag = "" if cfg.rank_by == "proj_diff" else f"_by_{cfg.rank_by}"  # the default ranking keeps plain names
    abl = ablation.table()
    files = [_table(table, out / f"heads_ranking{tag}.parquet"), _table(abl, out / f"heads_ablation{tag}.parquet")]
    grid = table.sort_values(["layer", "head"])
    for column, title in (("proj_diff", "head output · unit direction, corrupt - clean (last position)"),
                          ("attn_claim", "attention from the last position to the claim tokens")):
        values = grid[column].to_numpy().reshape(model.n_layers, model.n_heads)
        files += save_heatmap(values, [f"H{h}" for h in range(model.n_heads)],
                              [f"L{layer}" for layer in range(model.n_layers)], title, out, f"heads_{column}",
                              colorbar=column)
    summary = ablation.summary()
    modes = sorted({row["mode"] for row in summary})
    rand = abl[abl.selection == "random"]
    files += save_ablation(
        cfg.ks, modes,
        {m: ([r["k"] for r in summary if r["mode"] == m], [r["top_delta"] for r in summary if r["mode"] == m],
             [r["top_delta_lo"] for r in summary if r["mode"] == m],
             [r["top_delta_hi"] for r in summary if r["mode"] == m]) for m in modes},
        {m: (rand[rand["mode"] == m]["k"].tolist(), rand[rand["mode"] == m]["delta"].tolist()) for m in modes},
        f"ablating the top-k heads (by {cfg.rank_by}) vs k random heads", out, f"heads_ablation{tag}")
    concentration = {}
    if cfg.rank_by != "attn_claim":
        positive = np.clip(table[cfg.rank_by].to_numpy(), 0, None)  # sorted by it, largest first
        concentration = {f"top{k}_share_of_positive_{cfg.rank_by}": float(positive[:k].sum() / max(positive.sum(), 1e-12))
                         for k in cfg.ks}
    groups = np.array(ablation.pair_ids)
    return _finish(ctx, {
        "direction": direction, "n_heads": model.n_layers * model.n_heads,
        "base_deference": ci_fields("deference", ablation.base_deference, groups),
        "top_heads": table.head(10)[["name", "proj_diff", "proj_diff_lo", "proj_diff_hi", "dla_diff",
                                      "attn_claim"]].to_dict(orient="records"),
        "dla_diff_total": float(table["dla_diff"].sum()),
        "concentration": concentration, "ablation": summary,
    }, files, tag)


#: analysis name -> function writing its files and returning its summary
ANALYSES: dict[str, Callable[[AnalysisContext], dict[str, Any]]] = {
    "dla": analyze_dla,
    "patching": analyze_patching,
    "heads": analyze_heads,
}


def run_analysis(ctx: AnalysisContext) -> dict[str, Any]:
    """Run `ctx.config.what` (a key of ANALYSES) and return its summary.

    Raises:
        ValueError: when there are no usable pairs.
    """
    if not ctx.contrast_set.contrasts:
        raise ValueError(f"no usable pairs (skipped: {len(ctx.contrast_set.skipped)})")
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    return ANALYSES[ctx.config.what](ctx)
