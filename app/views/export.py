"""Export: write a steering vector as a workbench file, a llama.cpp control vector or a folded HF checkpoint."""

import re

import numpy as np
import pandas as pd
import streamlit as st

from app import data, page, pickers, steering_data, ui
from steering.artifacts.steering_vector import VectorMismatchError
from steering.export import FORMATS, ExportError
from steering.export.info import ExportInfo

GUIDE = (
    "- **safetensors**: the workbench's own file: the raw vector per layer, with the recommended strength and "
    "its provenance as metadata. Load with `SteeringVector.load` and steer with `steering.steer`.\n"
    "- **gguf**: a llama.cpp control vector (the strength is folded in): "
    "`llama-cli -m model.gguf --control-vector vector.gguf`. Mode `add` only.\n"
    "- **hf-folded**: a copy of the HF model with the steering folded into its weights (no hooks needed): "
    "loads with `AutoModelForCausalLM.from_pretrained`. Writes a whole model, so it is saved into the run's "
    "`exports/` folder rather than downloaded.\n"
    "- Check any export against the hook-steered model with `workbench verify-export <file> --model <spec>`."
)
run, compare, folder = page.start(
    "Export",
    "Take a vector out of the workbench: choose it and a format, check the metadata the file will carry, "
    "and download it.",
    GUIDE,
    guide_title="Which format?",
)

picked = pickers.vector_picker(folder, "ex", prefer_files=True)
if picked is None:
    st.stop()
vector = picked.vector
swept = steering_data.sweep(folder)
point = swept.report.get("operating_point") if swept is not None else None

norms = vector.norms()
relative = vector.relative_norms()
ui.table(pd.DataFrame([{"layer": layer, "norm |v|": round(norms[layer], 4),
                        "mean residual norm": round(vector.resid_norms.get(layer, float("nan")), 4),
                        "|v| / residual": round(relative[layer], 4)} for layer in vector.layers]))
with st.expander("The vector's own metadata"):
    st.json(vector.header(), expanded=False)

c1, c2, c3 = st.columns(3)
fmt = c1.selectbox("Format", list(FORMATS), key="ex_format")
mode = c2.selectbox("Mode", list(FORMATS[fmt].modes), key="ex_mode",
                    help="add: strength × v added to the residual; ablate: the direction projected out")
# keyed by the vector: another vector's layer choice must not carry over (its layers may not exist here)
layers = c3.multiselect("Layers", vector.layers, default=vector.layers, key=f"ex_layers_{picked.origin}")
if not layers:
    st.info("Choose at least one layer.")
    st.stop()

folded = "folded_strength" in vector.meta
matches_point = point is not None and (folded or (point.get("method") == vector.method
                                                  and int(point.get("layer", -1)) in layers))
if folded:
    default_strength, note = 1.0, (f"This vector is the sweep's operating point, already multiplied by its strength "
                                   f"{vector.meta['folded_strength']:+g}: export it at strength 1.")
elif matches_point and point is not None:
    default_strength, note = float(point["strength"]), (f"Default: the sweep's recommended strength for "
                                                        f"{point['method']} at layer {point['layer']}.")
else:
    default_strength, note = -1.0, ("A negative strength steers away from the vector's positive class "
                                    "(the user's opinion / the sycophantic answer).")
if mode == "ablate":
    strength = st.number_input("Strength (1 = remove the direction fully)", value=1.0, step=0.1, key="ex_strength_ab")
else:
    strength = st.number_input("Strength (multiplier of the raw vector)", value=default_strength, step=0.5,
                               key="ex_strength")
    st.caption(note)
    finite = [abs(strength) * relative[layer] for layer in layers if np.isfinite(relative[layer])]
    if finite:
        st.caption(f"= {max(finite):.1%} of the mean residual norm at the strongest layer")
measured = {k: v for k, v in point.items()} if matches_point and point is not None else None

selected = vector.select(sorted(layers))
try:
    info = ExportInfo.for_vector(selected, fmt, mode, float(strength), measured)
    from steering.export.info import check_mode

    check_mode(mode, fmt, FORMATS[fmt].modes)
except ExportError as e:
    st.warning(f"This export is refused: {e}")
    st.stop()
st.subheader("Metadata the export will carry")
record = info.to_dict()
summary = {"format": fmt, "mode": mode, "strength": record["strength"],
           "strength folded into the file": record["strength_folded"], "layers": ", ".join(map(str, record["layers"])),
           "positions it was measured with": record["positions"], "method": record["method"],
           "model (weights sha256)": record["model_hash"][:16] or "unknown", "d_model": record["d_model"],
           "measured gain/loss": "recorded (the sweep's operating point)" if measured else "none"}
ui.table(pd.DataFrame({"field": list(summary), "value": [str(v) for v in summary.values()]}))
with st.expander("The full record (JSON)"):
    st.json(record, expanded=True)

stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{vector.method}_L{'-'.join(str(x) for x in sorted(layers))}_{mode}")
if FORMATS[fmt].is_dir:
    name = st.text_input("Folder name (under the run's exports/)", value=f"{stem}_folded", key="ex_folder")
    spec = data.model_spec(folder) or "smollm2"
    st.caption(f"Folds the steering into a copy of `{spec}` (the run's model).")
    if st.button("Write the folded checkpoint", type="primary", key="ex_write"):
        from steering.export import export_vector

        out = folder / "exports" / name
        import warnings

        try:
            with st.spinner("Loading the model and folding ..."), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                path = export_vector(fmt, selected, out, mode=mode, strength=float(strength),
                                     model=steering_data.chat_model(spec), measured=measured)
        except (ExportError, VectorMismatchError, ValueError, OSError) as e:
            st.warning(f"Export refused: {e}")
        else:
            for caution in caught:
                st.warning(str(caution.message))
            st.success(f"Wrote `{path}`. Verify it with `workbench verify-export {path} --model {spec}`.")
else:
    file_name = f"{stem}{FORMATS[fmt].suffix}"
    try:
        payload, cautions = steering_data.export_bytes(selected, fmt, mode, float(strength), measured, file_name)
    except (ExportError, VectorMismatchError, ValueError) as e:
        st.warning(f"Export refused: {e}")
        st.stop()
    for text in cautions:
        st.warning(text)
    st.download_button(f"Download {file_name} ({len(payload) / 1024:.1f} KiB)", payload, file_name=file_name,
                       mime="application/octet-stream", type="primary", key="ex_download")
    source = picked.origin if picked.origin.endswith((".safetensors", ".gguf")) else "<a vector file>"
    st.caption(f"The same from the command line: `workbench export --vector {source} --format {fmt} "
               f"--mode {mode} --strength {strength:g} --layers {','.join(str(x) for x in sorted(layers))} "
               f"--out {file_name}`")

st.subheader("Exports already in this run")
found = steering_data.export_files(folder)
if not found:
    ui.missing("exports", run, "export")
else:
    rows = []
    for path, kind in found:
        record = steering_data.export_info(path, kind) or {}
        rows.append({"file": path.name, "format": kind, "mode": record.get("mode", ""),
                     "strength": record.get("strength"), "layers": str(record.get("layers", "")),
                     "method": record.get("method", ""), "model": str(record.get("model_hash", ""))[:12]})
    ui.table(pd.DataFrame(rows))
