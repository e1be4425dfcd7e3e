"""Eval profile: how sycophantic the unsteered model is, per task, next to the third-party control."""

import pandas as pd
import streamlit as st

from app import data, figures, page, ui

GUIDE = (
    "- **Conditions** are variants of the same question (they share a pair id): `neutral` (no opinion), "
    "`user_wrong` (the user states a wrong answer), `user_right`, `challenge` (\"are you sure?\"), ...\n"
    "- **Shift**: per question, how far the answer moved toward the pushed answer compared with the baseline "
    "(margin = log-prob of the correct answer minus the pushed one; for feedback: change in the rating).\n"
    "- **Third-party control**: the same wrong answer, attributed to someone else (\"my friend thinks ...\"). "
    "Small models copy any answer they see in context; only what the *user's* opinion adds beyond that is "
    "sycophancy. **Deference** = shift(user) − shift(third party), per question.\n"
    "- Flip rates are computed on questions the model answers correctly at baseline (*known* pairs).\n"
    "- Brackets are 95% bootstrap intervals over questions."
)
run, compare, folder = page.start(
    "Eval profile",
    "How the unsteered model answers when someone pushes an answer: the batch `workbench eval` scores "
    "every task's conditions by the log-probability of each answer's text.",
    GUIDE,
)

result = data.eval_result(folder)
if result is None or "profile" not in result:
    ui.missing("eval", run, "eval profile")
    st.stop()
profile = result["profile"]
tasks = list(profile)
task = st.selectbox("Task", tasks, key="profile_task", help="Each task puts pressure on the model differently.")
t = profile[task]

runs = {run: profile}
if compare:
    other = data.eval_result(data.run_folder(compare))
    if other is None or "profile" not in other:
        st.info(f"The comparison run **{compare}** has no eval profile.")
    elif task not in other["profile"]:
        st.info(f"The comparison run **{compare}** has no task {task!r}.")
    else:
        runs[compare] = other["profile"]


def effect_rows(task_profile: dict) -> pd.DataFrame:
    rows = [{"effect": cond, "metric": metric, **value}
            for cond, entry in task_profile["effects"].items()
            for metric, value in entry.items() if metric in ("shift", "control_shift", "deference")]
    return pd.DataFrame(rows, columns=["effect", "metric", "estimate", "low", "high", "n"])


effects = {name: effect_rows(p[task]) for name, p in runs.items()}
c1, c2, c3 = st.columns(3)
c1.metric("examples scored", result.get("n_examples", "?"))
if "known_pairs" in t:
    c2.metric("questions known at baseline", f"{t['known_pairs']} of {t['known_pairs'] + t['unknown_pairs']}")
with_control = [(cond, e) for cond, e in t["effects"].items() if "deference" in e]
if with_control:
    cond, e = with_control[0]
    c3.metric(f"deference ({cond} vs {e['control']})", ui.ci(e["deference"]),
              help="shift under the user's opinion minus shift under the third-party control (95% CI)")

if any(not f.empty for f in effects.values()):
    st.plotly_chart(figures.effects_figure(effects, f"{task}: shift vs baseline, user vs third party (95% CI)"),
                    key="profile_effects")
else:
    st.info(f"Task {task!r} has no pressure effects to show (no baseline condition in this run).")

st.subheader("Effects vs baseline")
rows = []
for cond, e in t["effects"].items():
    rows.append({"condition": cond, "pairs": e.get("n_pairs"), "shift": ui.ci(e.get("shift")),
                 "flip rate (known)": ui.ci(e.get("flip_rate_known"), signed=False), "control": e.get("control", ""),
                 "control shift": ui.ci(e.get("control_shift")), "deference": ui.ci(e.get("deference"))})
ui.table(pd.DataFrame(rows))

st.subheader("Conditions")
rows = [{"condition": cond, "n": s["n"], "accuracy": ui.ci(s.get("correct"), signed=False),
         "chose pushed answer": ui.ci(s.get("chose_pushed"), signed=False), "margin": ui.ci(s.get("margin")),
         "rating": ui.ci(s.get("rating"))} for cond, s in t["conditions"].items()]
ui.table(pd.DataFrame(rows))

scores = data.eval_scores(folder)
if scores is not None:
    with st.expander("Per-example scores"):
        ui.table(scores[scores["task"] == task])
st.caption(f"eval config: {result.get('config', {})}")
