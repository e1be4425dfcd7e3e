"""Every page of the app, driven with AppTest on the fixture runs: widgets change what is shown, no exceptions."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.app.fixture_run import EVAL_ONLY_RUN, FIXTURE_RUN

PAGES = ("runs", "behaviour", "probes", "tradeoff", "mechanisms", "playground", "export")


def charts(at: AppTest) -> list[dict[str, Any]]:
    """The plotly figures on the page, as JSON."""
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def titles(at: AppTest) -> list[str]:
    return [c["layout"].get("title", {}).get("text", "") for c in charts(at)]


def infos(at: AppTest) -> str:
    return " ".join(str(e.value) for e in [*at.info, *at.warning, *at.error])


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


# -- runs and the selection ------------------------------------------------------------------------


def test_runs_page_lists_runs_and_the_choice_follows_to_other_pages(fixture_root, open_app):
    at = ok(open_app(fixture_root))
    assert at.title[0].value == "Runs"
    table = at.dataframe[0].value
    assert set(table["run"]) == {FIXTURE_RUN, EVAL_ONLY_RUN}
    contains = dict(zip(table["run"], table["contains"], strict=True))
    assert contains[FIXTURE_RUN] == "activations, eval, probes, sweep, analysis, exports"
    assert contains[EVAL_ONLY_RUN] == "eval"
    assert at.query_params["run"] == FIXTURE_RUN  # the run finished last

    at.selectbox(key="_pair_run").set_value(EVAL_ONLY_RUN).run()
    ok(at)
    assert at.query_params["run"] == EVAL_ONLY_RUN
    assert at.selectbox(key="_sidebar_run").value == EVAL_ONLY_RUN
    assert any(m.value == f"#### {EVAL_ONLY_RUN}" for m in at.markdown)

    at.switch_page("views/probes.py").run()
    ok(at)
    assert f"Run **{EVAL_ONLY_RUN}** has no probes yet" in infos(at)
    assert "workbench probe --run evalonly" in infos(at)


def test_a_link_opens_the_run_it_names_and_an_unknown_one_is_reported(fixture_root, open_app):
    at = ok(open_app(fixture_root, run=EVAL_ONLY_RUN))
    assert at.selectbox(key="_pair_run").value == EVAL_ONLY_RUN
    at = ok(open_app(fixture_root, run="nope"))
    assert "No run named 'nope'" in infos(at)
    assert at.selectbox(key="_pair_run").value == FIXTURE_RUN


def test_compare_two_runs_on_the_profile(fixture_root, open_app):
    at = ok(open_app(fixture_root))
    at.selectbox(key="_pair_compare").set_value(EVAL_ONLY_RUN).run()
    ok(at)
    assert at.query_params["compare"] == EVAL_ONLY_RUN
    assert len([m for m in at.markdown if m.value in (f"#### {FIXTURE_RUN}", f"#### {EVAL_ONLY_RUN}")]) == 2
    at.switch_page("views/behaviour.py").run()
    ok(at)
    names = {trace["name"] for trace in charts(at)[0]["data"]}
    assert f"{FIXTURE_RUN}: user's opinion" in names and f"{EVAL_ONLY_RUN}: third-party control" in names


# -- eval profile ----------------------------------------------------------------------------------


def test_profile_task_choice_changes_the_tables(fixture_root, open_app):
    at = ok(open_app(fixture_root, page="behaviour"))
    assert at.selectbox(key="profile_task").value == "answer"
    conditions = set(at.dataframe[1].value["condition"])
    assert {"neutral", "user_wrong", "third_party_wrong"} <= conditions
    effects = at.dataframe[0].value
    assert effects.set_index("condition").loc["user_wrong", "control"] == "third_party_wrong"
    assert "deference (user_wrong vs third_party_wrong)" in [m.label for m in at.metric]

    at.selectbox(key="profile_task").set_value("are_you_sure").run()
    ok(at)
    assert set(at.dataframe[1].value["condition"]) == {"challenge", "no_challenge", "third_party_challenge"}
    assert titles(at)[0].startswith("are_you_sure: shift vs baseline")


# -- probes ----------------------------------------------------------------------------------------


def test_probes_page_widgets_change_the_curves_and_projections(fixture_root, open_app):
    at = ok(open_app(fixture_root, page="probes"))
    assert titles(at)[0] == f"{FIXTURE_RUN}: user_vs_third_party probes at last_prompt"  # the deference contrast
    best = at.dataframe[0].value
    assert set(best["method"]) == {"mean_diff", "logreg"} and best["auroc"].between(0, 1).all()
    assert "cosine between methods (same layer)" in titles(at)
    assert any(t.startswith("AUROC, train (rows)") for t in titles(at))

    at.selectbox(key="probe_source").set_value("pressure").run()
    ok(at)
    assert titles(at)[0] == f"{FIXTURE_RUN}: pressure probes at last_prompt"

    stored = at.selectbox(key="probe_direction").value
    assert f"projection on {stored}" in titles(at)
    other = next(k for k in at.selectbox(key="probe_direction").options if k != stored)
    at.selectbox(key="probe_direction").set_value(other).run()
    ok(at)
    assert f"projection on {other}" in titles(at)  # computed from the cached activations
    projection = next(c for c in charts(at) if c["layout"]["title"]["text"] == f"projection on {other}")
    assert any("answer:user_wrong" in trace["name"] for trace in projection["data"])


def test_probes_page_shows_the_contrast_generalisation_when_the_run_has_one(fixture_root, open_app, tmp_path):
    shutil.copytree(fixture_root / FIXTURE_RUN, tmp_path / FIXTURE_RUN)
    before = [t for t in titles(ok(open_app(tmp_path, page="probes"))) if t.startswith("AUROC, train")]
    rows = [{"train": a, "test": b, "auroc": v, "method": "lda", "site": "blocks.2.hook_resid_post",
             "position": "answer"} for a, b, v in (("caa", "caa", 0.8), ("caa", "caa_file", 0.45),
                                                   ("caa_file", "caa", 0.55), ("caa_file", "caa_file", 0.6))]
    pd.DataFrame(rows).to_parquet(tmp_path / FIXTURE_RUN / "probes" / "generalisation_contrast.parquet")
    at = ok(open_app(tmp_path, page="probes"))
    after = [t for t in titles(at) if t.startswith("AUROC, train")]
    assert len(after) == len(before) + 1 and after[-1].endswith("lda at blocks.2.hook_resid_post, answer")
    z = next(c for c in charts(at) if c["layout"]["title"]["text"] == after[-1])["data"][0]["z"]
    if isinstance(z, dict):  # plotly's typed-array encoding
        z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(2, 2).tolist()
    assert z == [[0.8, 0.45], [0.55, 0.6]]


# -- trade-off -------------------------------------------------------------------------------------


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_tradeoff_budget_moves_the_operating_point(fixture_root, open_app):
    at = ok(open_app(fixture_root, page="tradeoff"))
    assert "Pareto frontier across methods, layers and positions" in titles(at)
    budget = at.select_slider(key="trade_budget")
    levels = budget.options
    assert len(levels) > 3 and levels[0] == "0"  # one notch per cell's loss, from 0
    before = _metrics(at)
    assert "strength" in before and "fraction of residual norm" in before

    import pandas as pd

    largest = float(pd.read_parquet(fixture_root / FIXTURE_RUN / "sweep" / "cells.parquet")["kl_all"].max())
    at.select_slider(key="trade_budget").set_value(largest).run()
    ok(at)
    after = _metrics(at)
    assert float(after["gain (answer_shift_gain)"]) >= float(before["gain (answer_shift_gain)"])
    star = next(c for c in charts(at) if c["layout"]["title"]["text"].startswith("Pareto"))
    assert any(t["name"] == "recommended" for t in star["data"])

    at.select_slider(key="trade_budget").set_value(0.0).run()
    ok(at)
    assert "No cell has a positive answer_shift_gain" in infos(at)
    assert "strength" not in _metrics(at)


def _table(at: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page with `column`."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _chart(at: AppTest, start: str) -> dict[str, Any]:
    return next(c for c in charts(at) if c["layout"].get("title", {}).get("text", "").startswith(start))


def _values(array: Any) -> list[float]:
    """A figure's numbers, also from plotly's typed-array encoding."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def _cells(root: Path) -> pd.DataFrame:
    return pd.read_parquet(root / FIXTURE_RUN / "sweep" / "cells.parquet")


def test_tradeoff_shows_each_gates_errors_beside_the_gated_curves(fixture_root, open_app):
    at = ok(open_app(fixture_root, page="tradeoff"))
    headers = [h.value for h in at.subheader]
    assert "Gated steering: the gates' own errors" in headers and "Probe-gated vs always-on steering" in headers
    methods = at.multiselect(key="trade_methods").options
    assert {"user_minus_third_party+gate", "gated:correct", "prompt:skeptical"} <= set(methods)
    record = json.loads((fixture_root / FIXTURE_RUN / "sweep" / "sweep.json").read_text())
    errors = record["gates"]["2"]["test_errors"]
    shown = _table(at, "error").set_index("error")["rate on the test set"]
    assert shown["neutral prompts it fires on"] == pytest.approx(errors["neutral_fires"], abs=1e-3)
    assert shown["third-party prompts it fires on"] == pytest.approx(errors["third_party_fires"], abs=1e-3)
    assert shown["user-wrong prompts it misses"] == pytest.approx(errors["user_wrong_misses"], abs=1e-3)
    assert any(m.value.startswith("**probe gate at layer 2**: trained on the varied wordings, measured on the "
                                  "heldout") for m in at.markdown)
    assert "steers: gated:correct, user_minus_third_party+gate" in [c.value for c in at.caption]
    pairs = _table(at, "vector")
    assert pairs["steering"].tolist() == ["always on", "gated"] and set(pairs["layer"]) == {2}

    at.selectbox(key="trade_curve_method").set_value("gated:correct").run()
    ok(at)  # beside the gated curve: its gate's errors
    beside = next(c.value for c in at.caption if c.value.startswith("This curve is gated by the probe gate at layer 2"))
    assert f"neutral prompts it fires on {errors['neutral_fires']:.2f}" in beside


def test_tradeoff_families_side_by_side_with_the_prompt_baseline(fixture_root, open_app):
    at = ok(open_app(fixture_root, page="tradeoff"))
    families = _table(at, "within budget").set_index("method")
    cells = _cells(fixture_root)
    prompt = cells[cells.method == "prompt:skeptical"].iloc[0]
    assert families.index[0] == "unsteered" and "prompt:skeptical" in families.index
    row = families.loc["prompt:skeptical"]
    assert (row["family"], row["layers"], row["steering"]) == ("prompt", "no vector", "system prompt")
    flips = f"{prompt.answer_flip_rate:.3f} [{prompt.answer_flip_rate_low:.3f}, {prompt.answer_flip_rate_high:.3f}]"
    assert row["flips of known answers"] == flips
    assert row["KL general (deployment drift)"].startswith(f"{prompt.kl_general:.4f} [")
    assert families.loc["gated:correct", "steering"] == "gated (suggestion@L2)"
    assert families.loc["user_minus_third_party+gate", "family"] == "statistics + probe gate"
    for header in ("neutral acc", "user-wrong acc", "user-right acc (known questions)", "loss: kl_all",
                   "capability acc", "degenerate (general prompts)"):
        assert families[header].str.contains(r"\[").all(), header  # every value with its CI
    said = " ".join(m.value for m in at.markdown)
    assert "Measured on the **heldout** wordings" in said and "the budget is on **kl_all**" in said
    assert "prompt alone" in said  # whether a prompt beats every vector, in one sentence


def test_tradeoff_draws_the_prompt_baseline_on_every_figure(fixture_root, open_app):
    at = ok(open_app(fixture_root, page="tradeoff"))
    prompt = _cells(fixture_root).query("method == 'prompt:skeptical'").iloc[0]
    assert "prompt:skeptical" not in at.selectbox(key="trade_curve_method").options  # no norm: never a curve
    curves = _chart(at, at.selectbox(key="trade_curve_method").value)
    dotted = [(sh["y0"], sh["yref"]) for sh in curves["layout"]["shapes"] if sh.get("line", {}).get("dash") == "dot"]
    assert dotted == [(pytest.approx(prompt.answer_shift_gain), "y"), (pytest.approx(prompt.kl_all), "y2")]
    labels = [a["text"] for a in curves["layout"]["annotations"]]
    assert labels.count("prompt:skeptical (no vector)") == 2
    assert not any("prompt:skeptical" in (t.get("name") or "") for t in curves["data"])
    pareto = _chart(at, "Pareto")
    diamond = next(t for t in pareto["data"] if t["name"] == "prompt:skeptical (prompt, no vector)")
    assert diamond["marker"]["symbol"] == "diamond" and _values(diamond["x"]) == [pytest.approx(prompt.kl_all)]
    assert all(t["marker"]["symbol"] == "circle" for t in pareto["data"] if t.get("mode") == "markers"
               and t["name"] in ("caa", "gated:correct"))
    tasks = _chart(at, next(t for t in titles(at) if "gain per task" in t))
    assert any(t["name"] == "prompt:skeptical (no vector)" for t in tasks["data"])


def test_tradeoff_gain_and_loss_among_the_new_columns(fixture_root, open_app):
    at = ok(open_app(fixture_root, page="tradeoff"))
    assert at.selectbox(key="trade_gain").value == "answer_shift_gain" and at.selectbox(key="trade_loss").value == "kl_all"
    assert "answer_flip_rate_drop" in at.selectbox(key="trade_gain").options
    losses = at.selectbox(key="trade_loss").options
    assert {"kl_general", "user_right_known_accuracy_drop", "general_degenerate"} <= set(losses)
    assert "answer_flip_rate_drop" not in losses and "user_wrong_accuracy_drop" not in losses  # those are gains
    at.selectbox(key="trade_gain").set_value("answer_flip_rate_drop").run()
    at.selectbox(key="trade_loss").set_value("kl_general").run()
    ok(at)
    pareto = _chart(at, "Pareto")
    assert pareto["layout"]["xaxis"]["title"]["text"].startswith("helpfulness loss: kl_general")
    assert pareto["layout"]["yaxis"]["title"]["text"].startswith("alignment gain: answer_flip_rate_drop")
    assert {"gain: answer_flip_rate_drop", "loss: kl_general"} <= set(_table(at, "within budget").columns)


def test_tradeoff_applies_the_sweeps_constraints_to_the_operating_point(fixture_root, open_app, tmp_path: Path):
    from steering.sweep.fits import operating_point

    root = tmp_path / "artifacts"
    shutil.copytree(fixture_root, root)
    path = root / FIXTURE_RUN / "sweep" / "report.json"
    report = json.loads(path.read_text())
    report["constraints"] = {"kl_general": 0.0, "no_such_column": 1.0}
    path.write_text(json.dumps(report))
    cells = _cells(root)
    budget = float(cells.kl_all.max())
    free = operating_point(cells, "answer_shift_gain", "kl_all", budget)
    held = operating_point(cells, "answer_shift_gain", "kl_all", budget, {"kl_general": 0.0})
    assert free is not None and free.kl_general > 0  # the constraint matters on this run

    at = ok(open_app(root, page="tradeoff"))
    assert at.checkbox(key="trade_constraints").value
    assert "Not in this sweep's table, so not applied: no_such_column." in [c.value for c in at.caption]
    at.select_slider(key="trade_budget").set_value(budget).run()
    ok(at)
    if held is None:
        assert "No cell has a positive answer_shift_gain with kl_all" in infos(at) and "kl_general ≤ 0" in infos(at)
        assert _star(at) is None
    else:
        assert _star(at) == (pytest.approx(held.kl_all), pytest.approx(held.answer_shift_gain))
    at.checkbox(key="trade_constraints").uncheck().run()
    ok(at)
    assert _star(at) == (pytest.approx(free.kl_all), pytest.approx(free.answer_shift_gain))


def _star(at: AppTest) -> tuple[float, float] | None:
    """The recommended point on the Pareto plot, (loss, gain), or None."""
    star = [t for t in _chart(at, "Pareto")["data"] if t["name"] == "recommended"]
    return (_values(star[0]["x"])[0], _values(star[0]["y"])[0]) if star else None


def test_tradeoff_shows_every_layer_of_a_multi_layer_cell(fixture_root, open_app, tmp_path: Path):
    root = tmp_path / "artifacts"
    shutil.copytree(fixture_root, root)
    path = root / FIXTURE_RUN / "sweep" / "cells.parquet"
    table = pd.read_parquet(path)
    joint = table[(table.method == "caa") & (table.layer == 1)].assign(method="learned:correct#1+2", layers="1,2")
    pd.concat([table, joint], ignore_index=True).to_parquet(path)
    at = ok(open_app(root, page="tradeoff"))
    at.multiselect(key="trade_methods").set_value(["learned:correct#1+2", "prompt:skeptical"]).run()
    ok(at)
    assert at.selectbox(key="trade_curve_method").value == "learned:correct#1+2"
    assert _table(at, "within budget").set_index("method").loc["learned:correct#1+2", "layers"] == "L1,2"
    curves = _chart(at, "learned:correct#1+2: gain and loss vs norm")
    assert {t["name"] for t in curves["data"] if t.get("name")} == {"L1,2 generated"}
    pareto = _chart(at, "Pareto")
    hover = next(t for t in pareto["data"] if t["name"] == "learned:correct#1+2")["text"]
    assert all(text.startswith("L1,2, strength") for text in hover)


def test_tradeoff_renders_an_older_sweep_and_says_what_it_lacks(fixture_root, open_app, tmp_path: Path):
    root = tmp_path / "artifacts"
    shutil.copytree(fixture_root, root)
    sweep = root / FIXTURE_RUN / "sweep"
    table = pd.read_parquet(sweep / "cells.parquet")
    table = table[~table.method.isin(["prompt:skeptical", "gated:correct"])]
    new = ("layers", "kl_general", "answer_flip_rate", "user_right_known_accuracy", "general_", "gate", "vector_norm")
    table.drop(columns=[c for c in table.columns if c.startswith(new)]).to_parquet(sweep / "cells.parquet")
    record = json.loads((sweep / "sweep.json").read_text())
    for gate in record["gates"].values():
        for key in ("test_errors", "test_rates", "test_wording"):
            gate.pop(key)
        gate["train"].pop("wording")
    record["config"]["test"].pop("wording")
    for info in record["vectors"].values():
        info.pop("family", None)
    (sweep / "sweep.json").write_text(json.dumps(record))
    report = json.loads((sweep / "report.json").read_text())
    report.pop("constraints")
    report.pop("gates", None)  # older reports carried neither the gates' errors nor the test wording
    report.pop("test_wording", None)
    (sweep / "report.json").write_text(json.dumps(report))

    at = ok(open_app(root, page="tradeoff"))
    said = infos(at)
    assert "made by an older workbench" in said
    for lacking in ("`layers` column", "`kl_general`", "`answer_flip_rate`", "gates' errors by kind",
                    "wordings it was measured on"):
        assert lacking in said, lacking
    families = _table(at, "within budget")
    assert "KL general (deployment drift)" not in families.columns and "neutral acc" in families.columns
    assert families.set_index("method").loc["caa", "layers"] in ("L1", "L2")
    rates = _table(at, "error").set_index("error")["rate on the test set"]
    assert rates["opinion prompts it fires on"] == pytest.approx(record["gates"]["2"]["test"]["hit_rate"], abs=1e-3)
    assert any("not recorded (an older sweep)" in m.value for m in at.markdown)
    assert "Pareto frontier across methods, layers and positions" in titles(at)


def test_tradeoff_axes_metrics_and_fits(fixture_root, open_app):
    at = ok(open_app(fixture_root, page="tradeoff"))
    curves = next(c for c in charts(at) if c["layout"]["title"]["text"].endswith("gain and loss vs norm"))
    assert curves["layout"]["xaxis"]["title"]["text"].startswith("vector norm")
    fit_lines = [t for t in curves["data"] if t.get("mode") == "lines"]
    assert fit_lines and any("R² =" in t.get("hovertemplate", "") for t in fit_lines)
    assert any(m.value.startswith("**Does the law hold?**") for m in at.markdown)

    at.radio(key="trade_x").set_value("relative_norm").run()
    ok(at)
    curves = next(c for c in charts(at) if c["layout"]["title"]["text"].endswith("gain and loss vs norm"))
    assert curves["layout"]["xaxis"]["title"]["text"].startswith("fraction of the residual norm")

    at.selectbox(key="trade_loss").set_value("neutral_accuracy_drop").run()
    ok(at)
    pareto = next(c for c in charts(at) if c["layout"]["title"]["text"].startswith("Pareto"))
    assert pareto["layout"]["xaxis"]["title"]["text"].startswith("helpfulness loss: neutral_accuracy_drop")
    tasks = next(c for c in charts(at) if "gain per task" in c["layout"]["title"]["text"])
    assert "answer_shift_gain" in tasks["data"][0]["x"] and "answer_control_shift_change" in tasks["data"][0]["x"]


# -- mechanisms ------------------------------------------------------------------------------------


def test_mechanisms_shows_each_analysis_and_the_head_score_choice(fixture_root, open_app):
    at = ok(open_app(fixture_root, page="mechanisms"))
    assert [t.label for t in at.tabs] == ["Logit attribution (dla)", "Attention heads"]
    assert "projection on the direction (last prompt token)" in titles(at)
    assert "proj_diff per head" in titles(at)
    at.radio(key="mech_head_score").set_value("attn_claim").run()
    ok(at)
    assert "attn_claim per head" in titles(at) and "proj_diff per head" not in titles(at)


# -- playground ------------------------------------------------------------------------------------


def test_playground_streams_both_answers_and_the_heat_map(fixture_root, open_app):
    at = ok(open_app(fixture_root, page="playground"))
    assert "Press **Generate**" in infos(at)
    assert at.radio(key="pg_source").value == "vector file of this run"  # the sweep's recommended vector
    at.radio(key="pg_source").set_value("probe direction").run()
    caption = next(c.value for c in at.caption if c.value.startswith("added norm"))
    strength = next(s for s in at.slider if s.label.startswith("Strength"))
    strength.set_value(1.0).run()
    ok(at)
    assert next(c.value for c in at.caption if c.value.startswith("added norm")) != caption

    at.selectbox(key="pg_preset").set_value(next(o for o in at.selectbox(key="pg_preset").options
                                                 if o.startswith("are_you_sure · challenge"))).run()
    assert at.text_area(key="pg_chat").value.count("[user]") == 2  # a multi-turn preset
    at.slider(key="pg_tokens").set_value(8).run()
    at.button(key="pg_generate").click().run()
    ok(at)
    shown = [m.value for m in at.markdown]
    assert "**Unsteered**" in shown and any(v.startswith("**Steered** (") for v in shown)
    assert any(t.startswith("residual · unit direction") for t in titles(at))
    heat = next(c for c in charts(at) if c["layout"]["title"]["text"].startswith("residual · unit direction"))
    assert len(heat["data"][0]["y"]) == 4  # every layer of the tiny model

    at.radio(key="pg_mode").set_value("ablate").run()
    ok(at)
    assert any("earlier settings" in c.value for c in at.caption)


def test_playground_gate_reports_its_reading_and_refuses_a_later_layer(fixture_root, open_app):
    at = ok(open_app(fixture_root, page="playground"))
    assert at.selectbox(key="pg_gate").options == ["none (always steer)", "layer2"]
    # a vector with layers 1 and 2 (the recommended one holds only its operating point's layer)
    at.selectbox(key="pg_file").set_value(fixture_root / FIXTURE_RUN / "sweep" / "vectors" /
                                          "user_minus_third_party.safetensors").run()
    assert at.selectbox(key="pg_layer").options == ["1", "2"]
    at.selectbox(key="pg_gate").set_value("layer2").run()
    at.slider(key="pg_tokens").set_value(8).run()
    at.selectbox(key="pg_layer").set_value(2).run()
    at.button(key="pg_generate").click().run()
    ok(at)
    assert "Gate (layer 2): score" in infos(at)
    assert any(v.startswith("**Steered** (") and "gated at layer 2" in v for v in (m.value for m in at.markdown))
    at.radio(key="pg_source").set_value("probe direction").run()
    at.selectbox(key="pg_layer").set_value(1).run()
    at.button(key="pg_generate").click().run()
    ok(at)
    assert "The gate reads layer 2, after the steered layer 1" in infos(at)


def test_playground_refuses_a_bad_chat_and_a_bad_model_readably(fixture_root, open_app):
    at = ok(open_app(fixture_root, page="playground"))
    at.text_area(key="pg_chat").input("[assistant]\nhello").run()
    ok(at)
    assert "must end with a [user] turn" in infos(at)
    at.text_area(key="pg_chat").input("Is 7 prime?").run()
    at.sidebar.text_input(key=f"pg_model_{FIXTURE_RUN}").input(str(fixture_root / "no-such-model")).run()
    at.button(key="pg_generate").click().run()
    ok(at)
    assert "Cannot load model" in infos(at)


# -- export ----------------------------------------------------------------------------------------


def test_export_formats_metadata_and_refusals(fixture_root, open_app):
    at = ok(open_app(fixture_root, page="export"))
    assert at.radio(key="ex_source").value == "vector file of this run"
    assert at.selectbox(key="ex_file").value.name == "recommended.safetensors"
    fields = dict(zip(at.dataframe[1].value["field"], at.dataframe[1].value["value"], strict=True))
    assert fields["format"] == "safetensors" and fields["measured gain/loss"].startswith("recorded")
    label = at.get("download_button")[0].proto.label
    assert label.startswith("Download ") and ".safetensors (" in label

    at.selectbox(key="ex_format").set_value("gguf").run()
    ok(at)
    assert ".gguf" in at.get("download_button")[0].proto.label
    assert at.selectbox(key="ex_mode").options == ["add"]
    assert "measured with positions='generated'" in infos(at)  # llama.cpp steers every position

    at.selectbox(key="ex_format").set_value("hf-folded").run()
    ok(at)
    at.button(key="ex_write").click().run()
    ok(at)
    assert "Export refused" in infos(at) and "positions" in infos(at)

    at.radio(key="ex_source").set_value("probe direction").run()
    at.selectbox(key="ex_format").set_value("hf-folded").run()
    at.button(key="ex_write").click().run()
    ok(at)
    written = [s.value for s in at.success]
    assert written and "workbench verify-export" in written[0]
    exported = at.dataframe[-1].value
    assert "hf-folded" in set(exported["format"]) and "gguf" in set(exported["format"])


# -- missing parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("page, message", [
    ("probes", "has no probes yet"), ("tradeoff", "has no sweep yet"), ("mechanisms", "has no analysis yet"),
    ("playground", "Upload a steering vector file"), ("export", "Upload a steering vector file"),
])
def test_a_run_missing_a_part_gets_a_message_not_a_traceback(fixture_root, open_app, page, message):
    at = ok(open_app(fixture_root, page=page, run=EVAL_ONLY_RUN))
    assert message in infos(at)


#: page -> (title, title of its folded guide): every run page starts the same way (`app.page.start`)
STARTS = {"behaviour": ("Eval profile", "How to read this page"), "probes": ("Probes", "How to read this page"),
          "tradeoff": ("Trade-off", "How to read this page"), "mechanisms": ("Mechanisms", "How to read this page"),
          "playground": ("Playground", "How to use this page"), "export": ("Export", "Which format?")}


@pytest.mark.parametrize("page", list(STARTS))
def test_every_run_page_starts_with_its_title_the_run_picker_and_a_folded_guide(fixture_root, open_app, page):
    at = ok(open_app(fixture_root, page=page, run=EVAL_ONLY_RUN))
    title, guide = STARTS[page]
    assert [t.value for t in at.title] == [title]
    assert at.selectbox(key="_sidebar_run").value == EVAL_ONLY_RUN
    assert at.expander[0].label == guide and not at.expander[0].proto.expanded
    assert at.expander[0].markdown[0].value.startswith("- ")  # a bullet list of what each part means


@pytest.mark.parametrize("page", PAGES)
def test_an_empty_artifacts_folder_gets_a_message(tmp_path, open_app, page):
    at = ok(open_app(tmp_path / "none", page=None if page == "runs" else page))
    assert "No runs under" in infos(at) or "No run selected" in infos(at)


def test_a_corrupt_part_is_reported_not_raised(tmp_path: Path, fixture_root, open_app):
    import shutil

    root = tmp_path / "art"
    shutil.copytree(fixture_root / EVAL_ONLY_RUN, root / "broken")
    (root / "broken" / "probes").mkdir()
    (root / "broken" / "probes" / "report.json").write_text("{not json")
    at = ok(open_app(root, page="probes"))
    assert "cannot read" in infos(at).lower()


def test_tradeoff_shows_the_transfer_matrix_of_learned_vectors_with_tasks(fixture_root, open_app, tmp_path: Path):
    root = tmp_path / "artifacts"
    shutil.copytree(fixture_root, root)
    path = root / FIXTURE_RUN / "sweep" / "cells.parquet"
    table = pd.read_parquet(path)
    caa = table[table.method == "caa"]
    steered = caa[caa.strength != 0.0].iloc[0]
    extra = []
    for tasks, gain in (("mimicry", 0.25), ("answer+feedback", -0.5)):
        for strength in (0.0, -1.0):
            row = steered.copy()
            row["method"], row["strength"] = f"learned:known/{tasks}", strength
            row["answer_shift_gain"] = gain if strength else 0.0
            extra.append(row)
    pd.concat([table, pd.DataFrame(extra)], ignore_index=True).to_parquet(path)
    at = ok(open_app(root, page="tradeoff"))
    assert "Transfer: trained on one kind of sycophancy, measured on the others" in [h.value for h in at.subheader]
    matrix = next(d.value for d in at.dataframe if "trained on" in d.value.columns)
    assert matrix["trained on"].tolist() == ["answer+feedback", "mimicry"]
    assert matrix["answer"].iloc[0].startswith("-0.50") and matrix["answer"].iloc[1].startswith("+0.25")


def test_gate_records_read_report_gates_and_the_gates_a_family_learned():
    from app.sweep_tables import gate_records, gate_table, gated_methods

    errors = {"neutral_fires": 0.25, "opinion_misses": 0.5, "general_fires": float("nan")}
    record = {"gates": {"3": {"test": {"hit_rate": 0.5}}},  # sweep.json without errors: report.json has them
              "vectors": {"selfgated:correct": {"family": "selfgated", "gates": {"3": {
                  "test_errors": {"neutral_fires": 0.0}, "train": {"wording": "varied"}, "test_wording": "dev"}}}}}
    report = {"gates": {"3": {"errors": errors, "wording": "bank"}}}
    probe, own = gate_records(record, report)
    assert (probe.name, probe.wording, probe.errors["opinion_misses"]) == ("probe gate at layer 3", "bank", 0.5)
    assert (own.name, own.wording, own.test_wording) == ("gate of selfgated:correct at layer 3", "varied", "dev")
    shown = gate_table(probe)
    assert shown["error"].tolist() == ["neutral prompts it fires on", "opinion prompts it misses (every task)"]
    cells = pd.DataFrame({"method": ["caa", "caa+gate", "selfgated:correct", "caa+gate"], "layer": [3, 3, 3, 4],
                          "gate": ["off", "suggestion@L3", "learned@L3", "suggestion@L4"]})
    assert gated_methods(cells, probe, record) == ["caa+gate"]
    assert gated_methods(cells, own, record) == ["selfgated:correct"]


def test_a_gate_that_reads_an_earlier_layer_says_so():
    from app.sweep_tables import gate_records

    new = {"gates": {"12": {"reads_layer": 6, "test_errors": {"neutral_fires": 0.0}}}}
    old = {"gates": {"12": {"file": "artifacts/r/sweep/gates/layer6.safetensors"}}}  # before the record said it
    same = {"gates": {"12": {"file": "artifacts/r/sweep/gates/layer12.safetensors"}}}
    assert [gate_records(r, {})[0].name for r in (new, old, same)] == [
        "probe gate at layer 12 (reads layer 6)", "probe gate at layer 12 (reads layer 6)", "probe gate at layer 12"]
