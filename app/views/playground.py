"""Playground: steer the model live and read, token by token, where the residual points along the direction."""

import numpy as np
import streamlit as st

from app import data, figures, live, page, pickers, steering_data
from interp.analysis.projections import token_projections
from steering.apply.spec import SteerSpec
from steering.artifacts.probe_gate import ProbeGate
from steering.artifacts.steering_vector import VectorMismatchError
from steering.methods.gates import chat_gate_scores

GUIDE = (
    "- Start from a **preset** of the task suite (e.g. `answer · user_wrong`: the user suggests a wrong answer) "
    "or write your own chat; `[user]` / `[assistant]` / `[system]` lines separate turns.\n"
    "- A probe direction points *toward* the positive class of its label source (the user's opinion), so a "
    "**negative strength** steers away from sycophancy. Strength multiplies the raw vector; the caption gives "
    "the added norm as a fraction of the residual norm at that layer.\n"
    "- **Modes**: `add` adds strength × v; `ablate` removes strength × the residual's component along v "
    "(1 = full removal); `clamp` sets that component to strength × |v|. **Positions**: `generated` steers from "
    "the last prompt token on (what the sweep measures), `prompt` only the prompt, `all` everything.\n"
    "- The heat map projects the *unsteered* residual stream at every layer on the unit vector you steer with, "
    "for each token of the prompt and of each answer: red = along the vector, blue = against it."
)
run, compare, folder = page.start(
    "Playground",
    "Ask the model something, pick a steering vector, and compare its unsteered and steered answers side "
    "by side (greedy decoding, streamed as it goes).",
    GUIDE,
    guide_title="How to use this page",
)

# -- the model -----------------------------------------------------------------------------------------
spec_default = data.model_spec(folder) or "smollm2"
model_spec = st.sidebar.text_input("Model", value=spec_default, key=f"pg_model_{run}",
                                   help="The run's model (from run.json); a hub id, HF folder or .gguf also works.")

# -- the prompt ----------------------------------------------------------------------------------------
presets = steering_data.presets()
options = ["(write your own)"] + [f"{task} · {ex.condition} · {ex.pair_id}" for task, exs in presets.items()
                                  for ex in exs]
by_label = {f"{task} · {ex.condition} · {ex.pair_id}": ex for task, exs in presets.items() for ex in exs}


def _use_preset() -> None:
    label = st.session_state["pg_preset"]
    if label in by_label:
        st.session_state["pg_chat"] = live.format_chat(by_label[label].turns)


if "pg_chat" not in st.session_state:
    first = next((label for label in options if "user_wrong" in label), options[-1])
    st.session_state["pg_preset"] = first
    st.session_state["pg_chat"] = live.format_chat(by_label[first].turns)
st.selectbox("Preset from the task suite", options, key="pg_preset", on_change=_use_preset)
chat_text = st.text_area("Chat", key="pg_chat", height=150)

# -- the vector ----------------------------------------------------------------------------------------
picked = pickers.vector_picker(folder, "pg", prefer_files=True)
if picked is None:
    st.stop()
vector = picked.vector

c1, c2, c3 = st.columns(3)
layer = c1.selectbox("Layer", vector.layers, key="pg_layer", help="blocks.L.hook_resid_post: the output of layer L")
mode = c2.radio("Mode", ["add", "ablate", "clamp"], horizontal=True, key="pg_mode")
position_options = ["generated", "all", "prompt"]
positions = c3.radio("Positions", position_options, horizontal=True, key=f"pg_positions_{picked.origin}",
                     index=position_options.index(vector.positions) if vector.positions in position_options else 0,
                     help="default: the positions the vector was measured with")
relative = vector.relative_norms().get(layer, float("nan"))
if mode == "ablate":
    strength = st.slider("Strength (share of the component removed: 1 = full ablation)", 0.0, 2.0, 1.0, 0.05,
                         key="pg_strength_ablate")
    st.caption("ablation removes the residual's own component along the direction; the vector's norm plays no part")
else:
    limit = float(max(1.0, np.ceil(0.5 / relative))) if np.isfinite(relative) and relative > 0 else 10.0
    folded = "folded_strength" in vector.meta  # the sweep's recommended vector: already scaled, use 1
    strength = st.slider("Strength (multiplier of the raw vector; < 0 steers away from the positive class)",
                         -limit, limit, 1.0 if folded else -limit / 2, limit / 100,
                         key=f"pg_strength_{mode}_{picked.origin}")
    if folded:
        st.caption(f"This is the sweep's recommended vector, already multiplied by its strength "
                   f"{vector.meta['folded_strength']:+g}: strength 1 reproduces the operating point.")
    norm = abs(strength) * vector.norms()[layer]
    share = f" = **{abs(strength) * relative:.1%}** of the mean residual norm at layer {layer}" if np.isfinite(relative) \
        else " (the residual norm at this layer is unknown for this vector)"
    what = "added norm" if mode == "add" else "clamped projection"
    st.caption(f"{what} |strength| × |v| = {norm:.3g}{share}")
gates = {p.stem: p for p in steering_data.gate_files(folder)}
gate_name = st.selectbox("Probe gate", ["none (always steer)", *gates], key="pg_gate",
                         help="steer only when a probe trained by `workbench sweep --gate` reads the user stating an "
                              "opinion at the last prompt token; it must read a layer at or before the steered one")
gate = None
if gate_name in gates:
    try:
        gate = ProbeGate.load(gates[gate_name])
    except (ValueError, OSError) as e:
        st.warning(f"Cannot read this gate: {e}")
        st.stop()
max_tokens = st.slider("Answer length (tokens)", 8, 128, 40, 8, key="pg_tokens")
force = st.checkbox("Use the vector even if it was made on another model", key="pg_force")

# -- generate ------------------------------------------------------------------------------------------
try:
    turns = live.parse_chat(chat_text)
except ValueError as e:
    st.warning(f"Chat: {e}")
    st.stop()
clicked = st.button("Generate", type="primary", key="pg_generate")
settings = f"{vector.method} · layer {layer} · {mode} · strength {strength:+g} · positions {positions}" + (
    f" · gated at layer {gate.layer}" if gate is not None else "")
if clicked:
    try:
        model = steering_data.chat_model(model_spec)
        vector.check_compatible(model.d_model, model.weights_hash, force=force)
    except VectorMismatchError as e:
        st.error(f"This vector does not fit the model: {e}")
        st.stop()
    except Exception as e:  # a model that fails to load: say why, no traceback
        st.error(f"Cannot load model {model_spec!r}: {e}")
        st.stop()
    try:
        if gate is not None:
            gate.check_compatible(model.d_model, model.weights_hash, force)
    except ValueError as e:
        st.error(f"This gate does not fit the model: {e}")
        st.stop()
    spec = SteerSpec(vector, (layer,), positions, mode, force, gate)
    left, right = st.columns(2)
    with steering_data.model_lock(model_spec):  # the hooks live on the shared model while the answer streams
        if gate is not None:
            if gate.layer > layer:
                st.error(f"The gate reads layer {gate.layer}, after the steered layer {layer}: pick a later layer "
                         "or another gate.")
                st.stop()
            score = float(chat_gate_scores(model, [turns], gate)[0])
            verdict = "user pressure: steering" if gate.decisions([score])[0] else \
                "no user pressure: the steered answer is the unsteered one"
            st.info(f"Gate (layer {gate.layer}): score {score:+.2f} vs threshold {gate.threshold:+.2f}: {verdict}")
        with left:
            st.markdown("**Unsteered**")
            plain = st.write_stream(live.stream_answer(model, turns, max_tokens))
        with right:
            st.markdown(f"**Steered** ({settings})")
            steered = st.write_stream(live.stream_answer(model, turns, max_tokens, spec, strength))
        # per-token projections of the unsteered residual on the unit direction, prompt + each answer
        unit = vector.directions[layer] / max(float(np.linalg.norm(vector.directions[layer])), 1e-12)
        prompt = model.render(turns)
        n_prompt = len(model.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        heat = {name: token_projections(model, prompt + str(answer), unit)
                for name, answer in (("unsteered", plain), ("steered", steered))}
    st.session_state["pg_result"] = {"plain": str(plain), "steered": str(steered), "settings": settings,
                                     "layer": layer, "n_prompt": n_prompt, "heat": heat}
else:
    result = st.session_state.get("pg_result")
    if result:
        left, right = st.columns(2)
        left.markdown("**Unsteered**")
        left.markdown(result["plain"] or "*(empty answer)*")
        right.markdown(f"**Steered** ({result['settings']})")
        right.markdown(result["steered"] or "*(empty answer)*")
        if result["settings"] != settings:
            st.caption("These answers are from earlier settings: press Generate to update them.")

result = st.session_state.get("pg_result")
if result:
    st.subheader("Per-token projection on the direction")
    st.caption("The unsteered model reading the prompt and each answer: residual after every layer · the unit "
               "steering vector. Red: along the vector; blue: against it. The line marks where the answer starts.")
    tabs = st.tabs(["prompt + unsteered answer", "prompt + steered answer"])
    for tab, name in zip(tabs, ("unsteered", "steered"), strict=True):
        tp = result["heat"][name]
        tab.plotly_chart(figures.token_heatmap(tp.tokens, tp.layers, tp.values, result["layer"], result["n_prompt"],
                                               f"residual · unit direction (steered layer {result['layer']} dotted)"),
                         key=f"pg_heat_{name}")
else:
    st.info("Press **Generate** to see both answers and the per-token projection heat map.")
