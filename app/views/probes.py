"""Probes: where a linear probe reads the user's opinion, how the directions relate, and how they transfer."""

import pandas as pd
import streamlit as st

from app import data, figures, page, ui
from probes.plots import layer_curves_figure

GUIDE = (
    "- **Label sources**: `pressure` = the user states an answer vs the neutral question; "
    "`user_vs_third_party` = the user states the wrong answer vs a third party states the same wrong answer "
    "(a probe that separates these reads *who* holds the opinion, not just that a wrong answer is in context); "
    "`behaviour` = the model did vs did not move to the user's answer; `contrast` = CAA A/B completions.\n"
    "- **Methods**: logistic regression (`logreg`), difference of class means (`mean_diff`), shrinkage LDA "
    "(`lda`), PCA of paired differences (`pca_diff`). Each gives a direction in the residual stream.\n"
    "- **Control task** (dashed lines): the same probe trained on shuffled labels. A layer is informative when "
    "the solid line sits well above the dashed one; **selectivity** = accuracy − control accuracy.\n"
    "- Bands are 95% bootstrap intervals over questions."
)
run, compare, folder = page.start(
    "Probes",
    "Linear probes trained on cached activations (`workbench probe`): held-out accuracy and AUROC per "
    "layer, grouped by question so no question is in both training and test folds.",
    GUIDE,
)

frame = data.probe_frame(folder)
if frame is None or frame.empty:
    ui.missing("probes", run, "probe report")
    st.stop()

sources = list(dict.fromkeys(frame["label_source"]))
left, right = st.columns(2)
preferred = "user_vs_third_party" if "user_vs_third_party" in sources else sources[0]
source = left.selectbox("Label source", sources, index=sources.index(preferred), key="probe_source",
                        help="user_vs_third_party is the contrast that isolates deference to the user")
positions = list(dict.fromkeys(frame.loc[frame["label_source"] == source, "position"]))
position = right.selectbox("Token position", positions, key="probe_position",
                           help="last_prompt: the last token before the answer; user_claim: mean over the user's "
                                "stated opinion; answer: the answer letter.")


def curves(name: str, rows: pd.DataFrame, key: str) -> None:
    try:
        fig = layer_curves_figure(rows, source, position)
    except ValueError as e:
        st.warning(f"{name}: cannot draw the layer curves ({e}).")
        return
    fig.update_layout(title=f"{name}: {source} probes at {position}", height=420)
    st.plotly_chart(fig, key=key)


curves(run, frame, "probe_curves")
best = data.best_layers(folder)
if best is not None and not best.empty:
    shown = best[(best["label_source"] == source) & (best["position"] == position)]
    st.markdown("**Best layer per method** (highest held-out AUROC)")
    ui.table(shown[["method", "layer", "auroc", "auroc_low", "auroc_high", "selectivity"]].round(3))

if compare:
    other = data.probe_frame(data.run_folder(compare))
    if other is None or other.empty:
        st.info(f"The comparison run **{compare}** has no probe report.")
    elif not ((other["label_source"] == source) & (other["position"] == position)).any():
        st.info(f"The comparison run **{compare}** has no {source} probes at {position}.")
    else:
        curves(compare, other, "probe_curves_compare")

geometry, transfer, projection = st.tabs(["Direction geometry", "Generalisation across tasks", "Projections"])

with geometry:
    st.caption("Cosine similarity between probe directions: between methods at the anchor layer, and between "
               "layers for one method. Near 1: the same direction; near 0: unrelated.")
    tables = [(name, title, data.probe_table(folder, name))
              for name, title in (("cosines_methods", "between methods (same layer)"),
                                  ("cosines_layers", "between layers (the probe job's anchor method)"))]
    loaded = [(n, t, f) for n, t, f in tables if f is not None]
    if not loaded:
        st.info("This run has no cosine tables (probes/cosines_*.parquet).")
    for column, (name, title, table) in zip(st.columns(2), loaded, strict=False):
        table = table.set_index("row") if "row" in table else table
        column.plotly_chart(figures.heatmap(table, f"cosine {title}", -1.0, 1.0, "cosine"), key=f"probe_{name}")

with transfer:
    matrices = (
        ("generalisation", "A probe trained on one task (rows) and tested on another (columns), AUROC: does the "
         "opinion signal of one kind of pressure generalise to the others? 0.5 is chance.",
         "This run has no generalisation matrix (it needs probes on at least two tasks)."),
        ("generalisation_contrast", "The contrast probe (sycophantic vs honest letter at the answer) trained on our "
         "CAA pairs or on an external A/B file (`workbench probe --extra NAME=PATH::caa`), tested on each.",
         None),
    )
    for name, caption, missing in matrices:
        gen = data.probe_table(folder, name)
        if gen is None or gen.empty:
            if missing:
                st.info(missing)
            continue
        st.caption(caption)
        matrix = gen.pivot(index="train", columns="test", values="auroc")
        where = f"{gen['method'].iloc[0]} at {gen['site'].iloc[0]}, {gen['position'].iloc[0]}" if "site" in gen else ""
        st.plotly_chart(figures.heatmap(matrix, f"AUROC, train (rows) → test (columns) {where}", 0.0, 1.0, "AUROC"),
                        key=f"probe_{name}")
        with st.expander("table with CIs"):
            ui.table(gen.round(3))

with projection:
    st.caption("Each cached example projected on one direction, by task and condition. A direction that reads "
               "sycophancy separates `user_wrong` from `neutral` and from `third_party_wrong`.")
    dirs = data.directions(folder)
    if not dirs:
        st.info("This run has no probe directions (probes/directions.safetensors).")
    else:
        keys = sorted(dirs)
        stored = data.stored_projection_key(folder)
        if "probe_direction" not in st.session_state or st.session_state["probe_direction"] not in keys:
            st.session_state["probe_direction"] = stored if stored in keys else keys[0]
        key = st.selectbox("Direction", keys, key="probe_direction",
                           help="label source / method / position / site")
        proj = data.projections(folder, key)
        if proj is None:
            st.info(f"No cached activations at {dirs[key].site} / {dirs[key].position} in this run, so only the "
                    f"probe job's own direction ({stored}) can be projected.")
        else:
            scale = st.radio("Scale", ["projection", "z"], horizontal=True, key="probe_scale",
                             help="z: in units of the negative class's spread, 0 = the probe's threshold")
            st.plotly_chart(figures.projection_figure(proj, scale, f"projection on {key}"), key="probe_projection")
            summary = proj.groupby("condition")[scale].agg(["count", "mean", "std"]).round(3).reset_index()
            ui.table(summary)
