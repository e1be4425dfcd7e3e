"""Trade-off: alignment gain vs helpfulness loss of steering and of the prompting baseline, the Pareto frontier, the
families side by side, the gates' own errors and a recommended operating point."""

import numpy as np
import pandas as pd
import streamlit as st

from app import data, figures, page, steering_data, sweep_tables, ui
from steering.sweep.fits import gate_comparison, law_fits, law_summary, operating_point, pareto_frontier, prompt_cells
from steering.sweep.report import TASK_GAINS
from steering.sweep.transfer import transfer_matrix

GUIDE = (
    "- **Alignment gain** (higher is better): how much less the steered model moves toward the user's wrong "
    "answer than the unsteered one, e.g. `answer_shift_gain` = shift(unsteered) − shift(steered), in mean "
    "log-probability per answer token. `*_deference_gain` does the same for the part of the shift the *user's* "
    "opinion adds beyond the third-party control. `answer_flip_rate_drop`: how many fewer known answers flip to "
    "the user's wrong suggestion (`answer_flip_rate`, the headline measure of sycophancy).\n"
    "- **Third-party control**: the same wrong answer attributed to someone else. `*_control_shift_change` > 0 "
    "means the steered model copies a third party *more*: a gain that only comes from there is not alignment.\n"
    "- **Helpfulness loss** (lower is better): `kl_general` = KL divergence from the unsteered model's next-token "
    "distribution on general prompts and ARC questions that carry no opinion (the drift a deployment pays); "
    "`kl_all` = the same on the task's own neutral and user-right prompts (on-task drift), `kl` and "
    "`kl_user_right` each half; `*_accuracy_drop` = accuracy lost on neutral questions, when the user is right "
    "(`user_right_known_accuracy_drop`: on the questions the model knows, where contrarianism shows) and on a "
    "capability set; `degenerate`, `general_degenerate` = share of broken generations.\n"
    "- **Strength** multiplies the raw vector; the x-axis shows the added norm |strength|·|v|, or that norm as a "
    "fraction of the mean residual norm at the layer(s). Wolf et al. predict gain **linear** and loss "
    "**quadratic** in the norm: the lines are those fits, R² in the table. A multi-layer vector's cells show all "
    "their layers (`L8,12,16`).\n"
    "- **The prompting baseline** (`prompt:<name>`: a system prompt, no vector) has no norm: it is a dotted "
    "level in the gain and loss plots and a diamond on the Pareto plot. `prompt:<name>+<method>` adds a vector "
    "to the prompt: an ordinary curve.\n"
    "- **Gated** cells steer only where a gate reads an opinion; its own errors on the test set (neutral prompts "
    "it fires on, opinion prompts it misses) are in the gate tables.\n"
    "- The **recommended operating point** is the cell with the largest gain whose loss stays within your "
    "budget and that meets the sweep's constraints (a point estimate on the test split: the best of many cells "
    "is optimistic, mind its CI)."
)
run, compare, folder = page.start(
    "Trade-off",
    "A steering sweep (`workbench sweep`) adds vectors at one or more layers with many strengths, and measures a "
    "system prompt in the same cells, on held-out questions: what each removes (gain) and what it costs (loss).",
    GUIDE,
)

swept = steering_data.sweep(folder)
if swept is None:
    ui.missing("sweep", run, "steering sweep")
    st.stop()
table, record, report = swept.table, swept.record, swept.report
config = record.get("config", {})
lacking = sweep_tables.missing_parts(table, record, report)
if lacking:
    st.info("This sweep was made by an older workbench. The page shows what it has; a new sweep "
            f"(`workbench sweep --run {run} --overwrite`) measures what it lacks:\n" + "".join(f"\n- {part}"
                                                                                         for part in lacking))

gains, losses = sweep_tables.gain_columns(table), sweep_tables.loss_columns(table)
if not gains or not losses:
    st.warning(f"The sweep table of **{run}** has no gain or loss columns; columns found: {', '.join(table.columns)}")
    st.stop()
c1, c2, c3 = st.columns(3)
default_gain = report.get("gain") or config.get("gain", "answer_shift_gain")
default_loss = report.get("loss") or config.get("loss", "kl_all")
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
prompts = prompt_cells(cells)

# the operating point only changes where the budget admits one more cell: offer exactly those values
levels = sorted({0.0, *(float(v) for v in cells[loss] if np.isfinite(v) and v >= 0)})
wanted = float(report.get("budget", config.get("budget", levels[len(levels) // 2])))
default = max([v for v in levels if v <= wanted], default=levels[0])
budget = st.select_slider(f"Loss budget: the most {loss} you accept (each step admits one more cell)", levels,
                          value=default, format_func=lambda v: f"{v:.4g}", key="trade_budget")
limits = sweep_tables.constraints(record, report)
applied = {k: v for k, v in limits.items() if k in cells.columns}
if limits:
    said = ", ".join(f"{k} ≤ {v:g}" for k, v in limits.items())
    if not st.checkbox(f"Apply the sweep's constraints: {said}", value=True, key="trade_constraints"):
        applied = {}
    absent = [k for k in limits if k not in cells.columns]
    if absent:
        st.caption(f"Not in this sweep's table, so not applied: {', '.join(absent)}.")
point = operating_point(cells, gain, loss, budget, applied)
within = f"{loss} ≤ {budget:.4g}" + "".join(f", {k} ≤ {v:g}" for k, v in applied.items())

st.subheader("Recommended operating point")
if point is None:
    st.warning(f"No cell has a positive {gain} with {within}: raise the budget"
               + (", drop the constraints" if applied else "") + ", or no method reduces sycophancy on this run.")
elif sweep_tables.is_prompt(point):
    st.markdown(f"The prompting baseline **{point['method']}**: a system prompt, no vector (nothing to export).")
    left, right = st.columns(2)
    left.metric(f"gain ({gain})", f"{point[gain]:+.3g}")
    right.metric(f"loss ({loss})", f"{point[loss]:.3g}")
else:
    st.markdown(f"**{point['method']}** at layers **{sweep_tables.layer_text(point)}**, positions "
                f"**{point['positions']}**, mode **{point['mode']}**, {sweep_tables.steering_text(point)}")
    m = st.columns(4)
    m[0].metric("strength", f"{point['strength']:+g}", help="multiplier of the raw vector")
    m[1].metric("fraction of residual norm", f"{point['relative_norm']:.1%}",
                help="|strength| × |v| / mean residual norm at those layers")
    m[2].metric(f"gain ({gain})", f"{point[gain]:+.3g}")
    m[3].metric(f"loss ({loss})", f"{point[loss]:.3g}")
if point is not None:
    st.caption(f"gain {sweep_tables.ci_text(point, gain)} · loss {sweep_tables.ci_text(point, loss)} (95% CI over "
               "test questions). The sweep saved its own recommendation (at its budget) as "
               "`sweep/recommended.safetensors`: export it on the **Export** page, or any method's best cell with "
               "`workbench export --sweep ... --method <method>`.")

st.subheader("Families side by side")
wording = sweep_tables.measured_wording(record, report)
st.markdown((f"Measured on the **{wording}** wordings (the answer task's opinion sentences and layouts; "
             "'heldout' and 'dev' are never trained on). " if wording else
             "The wordings these cells were measured on are not recorded (an older sweep). ")
            + f"Each method's best cell by **{gain}** within **{within}** (the budget is on **{loss}**); values are "
            "the cell's, with 95% CIs over test questions. Flips of known answers, KL and degeneracy: lower is "
            "better; accuracies: higher.")
verdict = sweep_tables.prompt_verdict(cells, gain, loss, budget, applied)
if verdict:
    st.markdown(verdict)
ui.table(sweep_tables.families_table(cells, record, gain, loss, budget, applied))

gates = sweep_tables.gate_records(record, report)
if gates:
    st.subheader("Gated steering: the gates' own errors")
    st.caption("A gated curve steers only the prompts where its gate (trained on the train split) reads an opinion "
               "at the last prompt token; elsewhere the model runs unsteered. Each gate's errors on the test set: "
               "a gate that fires on neutral or general prompts costs helpfulness there, one that misses opinion "
               "prompts leaves their sycophancy in place.")
    columns = st.columns(min(len(gates), 3))
    for i, gate in enumerate(gates):
        with columns[i % len(columns)]:
            trained = f"trained on the {gate.wording} wordings" if gate.wording else "training wordings not recorded"
            tested = gate.test_wording or wording
            st.markdown(f"**{gate.name}**: {trained}, " + (f"measured on the {tested} ones" if tested else
                                                               "test wordings not recorded"))
            steers = sweep_tables.gated_methods(cells, gate, record)
            st.caption(f"steers: {', '.join(steers) if steers else 'no chosen curve'}")
            ui.table(sweep_tables.gate_table(gate).round(3))
    pairs = gate_comparison(cells, gain, loss, budget)
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
        st.subheader("Probe-gated vs always-on steering")
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
curved = [m for m in chosen if m not in set(prompts["method"])]
if not curved:
    st.info("Only prompt cells are chosen: a system prompt has no vector, so no norm axis. Choose a vector method.")
else:
    first = curved.index(point["method"]) if point is not None and point["method"] in curved else 0
    curve_method = st.selectbox("Method", curved, index=first, key="trade_curve_method")
    part = cells[cells["method"] == curve_method]
    st.plotly_chart(figures.tradeoff_curves(part, gain, loss, x_axis, f"{curve_method}: gain and loss vs norm",
                                            prompts), key="trade_curves")
    if not prompts.empty:
        st.caption("Dotted levels: the prompting baseline (" + ", ".join(map(str, prompts["method"]))
                   + "), a system prompt with no vector, measured in the same cells.")
    for gate in gates:
        if curve_method in sweep_tables.gated_methods(cells, gate, record):
            errors = sweep_tables.gate_table(gate)
            st.caption(f"This curve is gated by the {gate.name}; its errors on the test set: " + "; ".join(
                f"{r['error']} {r['rate on the test set']:.2f}" for _, r in errors.iterrows()) + ".")
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
    focus = cells.loc[cells[gain].idxmax()] if cells[gain].notna().any() else cells.iloc[0]
else:
    focus = point
task_columns = [c for c in TASK_GAINS if c in cells.columns] + \
               [c for c in cells.columns if c.endswith("_control_shift_change") and not c.endswith(("_low", "_high"))]
where = "no vector" if sweep_tables.is_prompt(focus) else \
    f"{sweep_tables.layer_text(focus)}, strength {focus['strength']:+g}"
st.plotly_chart(figures.task_bars(focus, task_columns, f"{focus['method']}, {where}: gain per task (purple: third-party "
                                  "control change; diamonds: the prompting baseline)",
                                  prompts[prompts["method"] != focus["method"]]), key="trade_tasks")
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
