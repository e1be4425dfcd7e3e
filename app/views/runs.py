"""Runs: what is under artifacts/, and which run (or two) the other pages show."""

import pandas as pd
import streamlit as st

from app import data, page, state, ui

run, compare = page.frame("Runs", "Every batch job (`workbench cache / eval / probe / sweep / analyze / export`) "
                          "writes into `artifacts/<run>/`. Pick a run here; every page then shows it. Pick a second "
                          "run to compare.")
names = data.run_names()
if not names:
    st.info(f"No runs under `{data.root()}` yet. Make one with `workbench demo` or "
            "`workbench probe --run demo`, or point the app elsewhere with `workbench app --artifacts DIR`.")
    st.stop()

table = data.runs_table()
st.subheader("Runs found")
st.caption(f"artifacts root: `{data.root().resolve()}`")
shown = table[["run", "model", "data", "finished"]].assign(
    contains=[", ".join(p for p in data.PARTS if row[p]) for _, row in table.iterrows()])
ui.table(shown)

left, right = st.columns(2)
state.pair_pickers(left, right)
run, compare = state.current()


def describe(name: str) -> None:
    folder = data.run_folder(name)
    record = data.run_record(folder)
    st.markdown(f"#### {name}")
    parts = data.parts_of(folder)
    held = [p for p, ok in parts.items() if ok]
    lacking = [p for p, ok in parts.items() if not ok]
    st.markdown(f"**Holds** {', '.join(held) or 'nothing yet'}" + (f" · **lacks** {', '.join(lacking)}" if lacking else ""))
    if "error" in record:
        st.warning(record["error"])
    model = record.get("model", {})
    if model:
        st.markdown(f"**Model** `{model.get('spec', '?')}` · {model.get('arch', '?')} · "
                    f"{model.get('n_layers', '?')} layers · d_model {model.get('d_model', '?')} · "
                    f"weights `{str(model.get('weights_hash', ''))[:12]}`")
    else:
        st.info("This run has no run.json: its provenance (model, config, versions) is unknown.")
    steps = record.get("steps", {})
    if steps:
        rows = [{"step": step, "finished": s.get("finished", "").replace("T", " "),
                 "git commit": (s.get("git_commit") or "")[:10],
                 "config": ", ".join(f"{k}={v}" for k, v in s.get("config", {}).items() if v not in (None, [], {}))}
                for step, s in steps.items()]
        ui.table(pd.DataFrame(rows))
        with st.expander("run.json (versions, seeds, full config)"):
            st.json(record, expanded=False)


columns = st.columns(2) if compare else [st.container()]
for column, name in zip(columns, [n for n in (run, compare) if n], strict=True):
    with column:
        describe(name)

st.divider()
st.markdown(
    "**Where to go next.** "
    "*Eval profile*: how often the model moves to a user's wrong answer, next to the third-party control. "
    "*Probes*: where in the network a linear probe reads the user's opinion. "
    "*Trade-off*: how much steering removes sycophancy (gain) and what it costs (loss). "
    "*Mechanisms*: patching, head rankings and logit attribution. "
    "*Playground*: steer the model live. *Export*: download a vector for llama.cpp or HF."
)
