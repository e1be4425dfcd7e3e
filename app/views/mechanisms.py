"""Mechanisms: where the user's opinion enters the computation (`workbench analyze`: dla, patching, heads)."""

import pandas as pd
import streamlit as st

from app import data, figures, page, ui

GUIDE = (
    "- **clean** run: the neutral question; **corrupt** run: the same question with the user's wrong answer. "
    "Logit difference = logit(correct answer) − logit(user's answer) at the answer position.\n"
    "- **Direct logit attribution (dla)**: which output tokens the deference direction promotes or suppresses, "
    "and the logit lens: where along the layers the residual starts to favour the user's answer.\n"
    "- **Activation patching**: copy the clean residual at one (layer, token) into the corrupt run; the "
    "*recovered fraction* (1 = fully back to clean) shows where the opinion's effect is carried.\n"
    "- **Heads**: each attention head's output projected on the direction (corrupt − clean) and its attention "
    "to the user's claim; ablating the top-k heads vs k random heads tests whether they matter.\n"
    "- Bands and brackets are 95% bootstrap intervals over question pairs."
)
run, compare, folder = page.start(
    "Mechanisms",
    "Mechanistic analyses of deference on pairs of the same question with and without the user's wrong "
    "answer (`workbench analyze --what dla | patching | heads`).",
    GUIDE,
)

parts = data.analyses(folder)
if not parts:
    ui.missing("analysis", run, "mechanistic analysis")
    st.stop()

tabs = st.tabs([{"dla": "Logit attribution (dla)", "patching": "Activation patching", "heads": "Attention heads"}
                .get(p.name, p.name) for p in parts])


def direction_note(summary: dict) -> None:
    d = summary.get("direction")
    if d:
        st.caption(f"direction: layer {d.get('layer')}, norm {d.get('norm', float('nan')):.3g}; {d.get('source', '')}")
    st.caption(f"{len(summary.get('pairs', []))} pairs analysed, {len(summary.get('skipped', {}))} skipped")


def static(part: data.AnalysisPart) -> None:
    if part.figures:
        with st.expander("Static figures (PNG, as written by the batch job)"):
            for name, path in part.figures.items():
                st.image(str(path), caption=name)


for tab, part in zip(tabs, parts, strict=True):
    with tab:
        s = part.summary
        direction_note(s)
        if part.name == "dla":
            ci = s.get("dla_toward_user", {})
            if ci:
                st.metric("direction's direct effect toward the user's answer (logits)",
                          ui.ci({"estimate": ci.get("toward_user"), "low": ci.get("toward_user_lo"),
                                 "high": ci.get("toward_user_hi")}, 3))
            lens = data.table(part.tables["dla_logit_lens"]) if "dla_logit_lens" in part.tables else None
            if lens is not None:
                c1, c2 = st.columns(2)
                c1.plotly_chart(figures.band_lines(lens, "layer", "proj", "condition",
                                                   "projection on the direction (last prompt token)",
                                                   "residual · unit direction"), key="mech_dla_proj")
                c2.plotly_chart(figures.band_lines(lens, "layer", "lens_ld", "condition",
                                                   "logit lens: logit(correct) − logit(user)", "logit difference"),
                                key="mech_dla_lens")
            dla = s.get("dla", {})
            c1, c2 = st.columns(2)
            c1.markdown("**Tokens the direction promotes**")
            c1.dataframe(pd.DataFrame(dla.get("promoted", [])), hide_index=True)
            c2.markdown("**Tokens it suppresses**")
            c2.dataframe(pd.DataFrame(dla.get("suppressed", [])), hide_index=True)
            st.caption(s.get("approximation", ""))
        elif part.name == "patching":
            m = st.columns(3)
            m[0].metric("clean logit diff", f"{s.get('clean_ld', float('nan')):+.2f}")
            m[1].metric("corrupt logit diff", f"{s.get('corrupt_ld', float('nan')):+.2f}")
            knock = s.get("knock_all", {})
            if knock:
                m[2].metric("recovered by hiding the claim", f"{knock.get('fraction', float('nan')):.0%}")
            resid = data.table(part.tables["patching_resid"]) if "patching_resid" in part.tables else None
            if resid is not None:
                st.plotly_chart(figures.grid_heatmap(resid, "layer", "slot", "fraction",
                                                     "recovered fraction: clean residual patched at (layer, token)",
                                                     "recovered", s.get("slots")), key="mech_patch_grid")
            layers = data.table(part.tables["patching_layers"]) if "patching_layers" in part.tables else None
            if layers is not None:
                st.plotly_chart(figures.band_lines(layers, "layer", "fraction", "component",
                                                   "recovered fraction per layer (attn / MLP output, claim knockout)",
                                                   "recovered fraction"), key="mech_patch_layers")
            top = s.get("top_cells", [])
            if top:
                st.markdown("**Cells that recover the most**")
                ui.table(pd.DataFrame(top).round(3))
        elif part.name == "heads":
            base = s.get("base_deference", {})
            if base:
                st.metric("deference of the unablated model (logit diff, clean − corrupt)",
                          ui.ci({"estimate": base.get("deference"), "low": base.get("deference_lo"),
                                 "high": base.get("deference_hi")}, 2))
            ranking = data.table(part.tables["heads_ranking"]) if "heads_ranking" in part.tables else None
            if ranking is not None:
                column = st.radio("Head score", ["proj_diff", "attn_claim", "dla_diff"], horizontal=True,
                                  key="mech_head_score",
                                  help="proj_diff: head output on the direction, corrupt − clean; attn_claim: "
                                       "attention to the claim tokens; dla_diff: direct logit effect, corrupt − clean")
                st.plotly_chart(figures.grid_heatmap(ranking, "layer", "head", column, f"{column} per head",
                                                     column), key="mech_heads_grid")
                st.markdown("**Top heads**")
                ui.table(ranking.sort_values("rank").head(10)[
                    ["rank", "name", "proj_diff", "proj_diff_lo", "proj_diff_hi", "dla_diff", "attn_claim"]].round(3))
            ablation = s.get("ablation", [])
            if ablation:
                st.markdown("**Ablating the top-k heads vs k random heads** (change in deference)")
                ui.table(pd.DataFrame(ablation).round(3))
        static(part)
