"""Trade-off: alignment gain vs helpfulness loss of steering, the Pareto frontier, and a recommended operating point."""

import numpy as np
import pandas as pd
import streamlit as st

from app import data, figures, page, steering_data, ui
from steering.sweep.fits import gate_comparison, law_fits, law_summary, operating_point, pareto_frontier
from steering.sweep.report import TASK_GAINS
from steering.sweep.transfer import transfer_matrix

GUIDE = (
    "- **Alignment gain** (higher is better): how much less the steered model moves toward the user's wrong "
    "answer than the unsteered one, e.g. `answer_shift_gain` = shift(unsteered) − shift(steered), in mean "
    "log-probability per answer token. `*_deference_gain` does the same for the part of the shift the *user's* "
    "opinion adds beyond the third-party control.\n"
    "- **Third-party control**: the same wrong answer attributed to someone else. `*_control_shift_change` > 0 "
    "means the steered model copies a third party *more*: a gain that only comes from there is not alignment.\n"
    "- **Helpfulness loss** (lower is better): `kl` = KL divergence from the unsteered model's next-token "
    "distribution on neutral prompts, `kl_user_right` on prompts where the user states the right answer, "
    "`kl_all` on both (the default: a pressure gate spares the first, not the second); `*_accuracy_drop` = accuracy lost on neutral questions, when the user is "
    "right (over-correction) and on a capability set; `degenerate` = share of broken generations.\n"
    "- **Strength** multiplies the raw vector; the x-axis shows the added norm |strength|·|v|, or that norm as a "
    "fraction of the mean residual norm at the layer. Wolf et al. predict gain **linear** and loss **quadratic** "
    "in the norm: the lines are those fits, R² in the table.\n"
    "- The **recommended operating point** is the cell with the largest gain whose loss stays within your "
    "budget (a point estimate on the test split: the best of many cells is optimistic, mind its CI)."
)
run, compare, folder = page.start(
    "Trade-off",
    "A steering sweep (`workbench sweep`) adds a vector at one layer with many strengths and measures, on "
    "held-out questions, what it removes (gain) and what it costs (loss).",
    GUIDE,
)

swept = steering_data.sweep(folder)
if swept is None:
    ui.missing("sweep", run, "steering sweep")
    st.stop()
table = swept.table
config = swept.record.get("config", {})

gains = [c for c in table.columns if c.endswith("_gain") and not c.endswith(("_low", "_high"))]
losses = [c for c in table.columns if (c.endswith("_drop") or c.startswith("kl") and not c.endswith(("_low", "_high"))
                                       or c in ("degenerate", "repetition"))
          and table[c].notna().any()]
if not gains or not losses:
    st.warning(f"The sweep table of **{run}** has no gain or loss columns; columns found: {', '.join(table.columns)}")
    st.stop()
c1, c2, c3 = st.columns(3)
default_gain = config.get("gain", "answer_shift_gain")
default_loss = config.get("loss", "kl_all")
gain = c1.selectbox("Alignment gain", gains, index=gains.index(default_gain) if default_gain in gains else 0,
                    key="trade_gain")
loss = c2.selectbox("Helpfulness loss", losses, index=losses.index(default_loss) if default_loss in losses else 0,
                    key="trade_loss")
x_axis = c3.radio("x-axis", list(figures.AXES), format_func=lambda k: {"norm": "vector norm",
                  "relative_norm": "fraction of residual norm"}[k], horizontal=True, key="trade_x")
methods = sorted(table["method"].unique())
chosen = st.multiselect("Methods", methods, default=methods, key="trade_methods")
cells = table[table["method"].isin(chosen)]
if cells.empty:
    st.info("Choose at least one method.")
    st.stop()

# the operating point only changes where the budget admits one more cell: offer exactly those values
levels = sorted({0.0, *(float(v) for v in cells[loss] if np.isfinite(v) and v >= 0)})
wanted = float(config.get("budget", levels[len(levels) // 2]))
default = max([v for v in levels if v <= wanted], default=levels[0])
budget = st.select_slider(f"Loss budget: the most {loss} you accept (each step admits one more cell)", levels,
                          value=default, format_func=lambda v: f"{v:.4g}", key="trade_budget")
point = operating_point(cells, gain, loss, budget)

st.subheader("Recommended operating point")
if point is None:
    st.warning(f"No cell has a positive {gain} with {loss} ≤ {budget:.4g}: raise the budget, or the vectors do not "
               "reduce sycophancy on this run.")
else:
    st.markdown(f"**{point['method']}** at layer **{int(point['layer'])}**, positions **{point['positions']}**, "
                f"mode **{point['mode']}**")
    m = st.columns(4)
    m[0].metric("strength", f"{point['strength']:+g}", help="multiplier of the raw vector")
    m[1].metric("fraction of residual norm", f"{point['relative_norm']:.1%}",
                help="|strength| × |v| / mean residual norm at that layer")
    m[2].metric(f"gain ({gain})", f"{point[gain]:+.3g}")
    m[3].metric(f"loss ({loss})", f"{point[loss]:.3g}")
    gain_ci = {"estimate": point[gain], "low": point.get(f"{gain}_low"), "high": point.get(f"{gain}_high")}
    loss_ci = {"estimate": point[loss], "low": point.get(f"{loss}_low"), "high": point.get(f"{loss}_high")}
    st.caption(f"gain {ui.ci(gain_ci, 4)} · loss {ui.ci(loss_ci, 4, signed=False)} (95% CI over test questions). "
               "The sweep saved this cell's vector as `sweep/recommended.safetensors`: export it on the **Export** page.")

gates = swept.record.get("gates", {})
if gates:
    st.subheader("Probe-gated vs always-on steering")
    st.caption("A `+gate` curve steers only the prompts where a probe (trained on the train split) reads the user "
               "stating an opinion at the last prompt token; elsewhere the model runs unsteered. The gate's rates on "
               "the held-out test prompts:")
    ui.table(pd.DataFrame([{"layer": int(layer), "hit rate (user opinion)": info["test"]["hit_rate"],
                            "false positives (none or third party)": info["test"]["false_positive_rate"],
                            "accuracy": info["test"]["accuracy"], "test prompts": info["test"]["n"]}
                           for layer, info in sorted(gates.items(), key=lambda kv: int(kv[0]))]).round(3))
    pairs = gate_comparison(table, gain, loss, budget)
    rows = []
    for pair in pairs:
        for which in ("always_on", "gated"):
            cell = pair[which]
            rows.append({"vector": pair["method"], "layer": pair["layer"], "positions": pair["positions"],
                         "steering": which.replace("_", " "),
                         "strength": None if cell is None else cell["strength"],
                         f"gain ({gain})": "none within budget" if cell is None else ui.ci(
                             dict(zip(("estimate", "low", "high"), cell[gain], strict=True)), 3),
                         f"loss ({loss})": "" if cell is None else ui.ci(
                             dict(zip(("estimate", "low", "high"), cell[loss], strict=True)), 4, signed=False)})
    if rows:
        st.markdown(f"Best cell of each curve within the loss budget ({loss} ≤ {budget:.4g}):")
        ui.table(pd.DataFrame(rows))

frontier = pareto_frontier(cells, gain, loss)
others = {}
if compare:
    other = steering_data.sweep(data.run_folder(compare))
    if other is None:
        st.info(f"The comparison run **{compare}** has no sweep.")
    elif gain in other.table and loss in other.table:
        others[compare] = pareto_frontier(other.table, gain, loss)
st.plotly_chart(figures.pareto_figure(cells, frontier, gain, loss, budget, point, others), key="trade_pareto")

st.subheader("Gain and loss against the vector's norm")
curve_method = st.selectbox("Method", chosen, index=chosen.index(point["method"]) if point is not None
                            and point["method"] in chosen else 0, key="trade_curve_method")
part = cells[cells["method"] == curve_method]
st.plotly_chart(figures.tradeoff_curves(part, gain, loss, x_axis, f"{curve_method}: gain and loss vs norm"),
                key="trade_curves")
fits = law_fits(cells, gain, loss)
if fits.empty:
    st.info("Too few strengths per curve to fit (a fit needs 3 cells: strength 0 and two on one side).")
else:
    summary = law_summary(fits)
    g, lo = summary["gain"], summary["loss"]
    st.markdown(f"**Does the law hold?** Gain is better fitted linearly than quadratically on "
                f"{g['law_wins']} of {g['curves']} curves (median R² {g['median_r2_law']:.2f} vs "
                f"{g['median_r2_alternative']:.2f}); loss is better fitted quadratically on {lo['law_wins']} of "
                f"{lo['curves']} (median R² {lo['median_r2_law']:.2f} vs {lo['median_r2_alternative']:.2f}).")
    shown = fits[[c for c in fits.columns if not c.endswith("_residuals")]]
    with st.expander("R² and coefficients of every curve"):
        ui.table(shown.round(4))

st.subheader("Per-task breakdown")
if point is None:
    st.info("No operating point within the budget: the breakdown shows the cell with the largest gain instead.")
    focus = cells.loc[cells[gain].idxmax()]
else:
    focus = point
task_columns = [c for c in TASK_GAINS if c in cells.columns] + \
               [c for c in cells.columns if c.endswith("_control_shift_change") and not c.endswith(("_low", "_high"))]
st.plotly_chart(figures.task_bars(focus, task_columns, f"{focus['method']}, layer {int(focus['layer'])}, "
                                  f"strength {focus['strength']:+g}: gain per task (purple: third-party control change)"),
                key="trade_tasks")
loss_columns = [c for c in losses if c in focus.index]
ui.table(pd.DataFrame([{"loss": c, "value": ui.ci({"estimate": focus[c], "low": focus.get(f"{c}_low"),
                                                   "high": focus.get(f"{c}_high")}, 4, signed=False)}
                     for c in loss_columns]))

matrix = transfer_matrix(cells)
if not matrix.empty:
    st.subheader("Transfer: trained on one kind of sycophancy, measured on the others")
    first = matrix.iloc[0]
    st.caption(f"Learned vectors that name their training tasks (`learned:<target>/<task>`), at strength "
               f"{first['strength']:+g} (the trained one), layer {int(first['layer'])}, {first['positions']}: shift "
               "gain per test task (> 0: less sycophantic; 95% CI over test pairs) and flip rate of known answers, "
               "unsteered -> steered.")
    shown = {}
    for task in ("answer", "are_you_sure", "mimicry", "feedback"):
        if f"{task}_shift_gain" not in matrix.columns:
            continue
        shown[task] = [ui.ci({"estimate": r[f"{task}_shift_gain"], "low": r[f"{task}_shift_gain_low"],
                              "high": r[f"{task}_shift_gain_high"]}, 2)
                       + ("" if pd.isna(r[f"{task}_flip_rate"]) else
                          f"; flips {r[f'{task}_flip_rate_base']:.2f} → {r[f'{task}_flip_rate']:.2f}")
                       for _, r in matrix.iterrows()]
    ui.table(pd.DataFrame(shown, index=pd.Index(matrix.index, name="trained on")).reset_index())

gens = swept.generations
if gens is not None and not gens.empty:
    with st.expander("Sample generations at this cell and unsteered"):
        same = gens[(gens["method"] == focus["method"]) & (gens["layer"] == focus["layer"]) &
                    (gens["positions"] == focus["positions"])]
        picked = same[same["strength"].isin([0.0, float(focus["strength"])])].sort_values(["prompt", "strength"])
        ui.table(picked[["prompt", "strength", "text"]])
