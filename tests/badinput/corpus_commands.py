"""Corpus cases: options, names and output paths of every command (cache, eval, probe, steer, export,
verify-export, sweep, analyze, app)."""

from __future__ import annotations

import json

from tests.badinput import files
from tests.badinput.cases import (
    a_file,
    case,
    config_file,
    damaged_sweep,
    eval_args,
    eval_data,
    export_args,
    layer_vector,
    measured,
    model_copy,
    probe_args,
    steer_args,
    sweep_args,
)
from tests.badinput.files import DEEP, data_with, good_record

case("eval_n_negative", lambda ws, d: ["eval", "--run", "r", "--n", "-1", "--artifacts", d], "--n")
case("eval_n_zero", lambda ws, d: ["eval", "--run", "r", "--n", "0", "--artifacts", d], "--n")
case("eval_batch_zero", eval_args("--batch-size", "0"), "--batch-size")
case("eval_task_unknown", lambda ws, d: ["eval", "--run", "r", "--model", ws.model, "--tasks", "bogus",
                                         "--artifacts", d], "unknown task 'bogus'")
case("eval_artifacts_is_file", lambda ws, d: [*eval_args()(ws, d)[:-2], "--artifacts", a_file(d)], "a-file", "is a file")
case("eval_artifacts_under_file", lambda ws, d: [*eval_args()(ws, d)[:-2], "--artifacts", a_file(d) / "sub"],
     "a-file", "is a file")
case("eval_artifacts_name_too_long", lambda ws, d: [*eval_args()(ws, d)[:-2], "--artifacts", d / ("x" * 300)],
     "too long")
case("eval_output_folder_is_file",
     lambda ws, d: ((d / "art" / "r").mkdir(parents=True), (d / "art" / "r" / "eval").write_text("x"),
                    eval_args()(ws, d))[-1], "eval", "is a file")
case("eval_artifacts_unwritable", lambda ws, d: [*eval_args()(ws, d)[:-2], "--artifacts", "/proc/workbench-test/art"],
     "cannot create the folder")
# outputs are checked before the model loads: with a missing model too, the error is about the output
NO_MODEL = "/nonexistent/model-folder"
case("order_cache_output_before_model", lambda ws, d: ["cache", "--run", "r", "--model", NO_MODEL, "--data", ws.data,
                                                       "--artifacts", a_file(d)], "a-file", "is a file")
case("order_eval_output_before_model", lambda ws, d: ["eval", "--run", "r", "--model", NO_MODEL, "--tasks", "answer",
                                                      "--n", "2", "--artifacts", a_file(d)], "a-file", "is a file")
case("order_probe_output_before_model", lambda ws, d: ["probe", "--run", "r", "--model", NO_MODEL, "--tasks", "answer",
                                                       "--n", "2", "--artifacts", a_file(d)], "a-file", "is a file")
case("order_sweep_output_before_model", lambda ws, d: ["sweep", "--run", "r", "--model", NO_MODEL, "--quick",
                                                       "--artifacts", a_file(d)], "a-file", "is a file")
case("order_analyze_output_before_model", lambda ws, d: ["analyze", "--run", "r", "--what", "dla", "--model", NO_MODEL,
                                                         "--artifacts", a_file(d)], "a-file", "is a file")
case("order_export_output_before_model", lambda ws, d: ["export", "--vector", ws.vector, "--format", "hf-folded",
                                                        "--model", NO_MODEL, "--out", a_file(d) / "m"],
     "a-file", "is a file")
case("order_verify_report_before_model", lambda ws, d: ["verify-export", ws.gguf, "--model", NO_MODEL, "--report",
                                                        a_file(d) / "r.json"], "a-file", "is a file")
case("eval_run_path_like", lambda ws, d: ["eval", "--run", "../up", "--artifacts", d], "--run", "plain folder name")
case("eval_run_empty", lambda ws, d: ["eval", "--run", "", "--artifacts", d], "--run", "plain folder name")
case("eval_run_space", lambda ws, d: ["eval", "--run", "a b", "--artifacts", d], "--run", "plain folder name")
case("eval_run_too_long", lambda ws, d: ["eval", "--run", "r" * 150, "--artifacts", d], "--run", "at most 100")
case("eval_run_record_damaged",
     lambda ws, d: ((d / "art" / "r").mkdir(parents=True), (d / "art" / "r" / "run.json").write_text("{"),
                    eval_args()(ws, d))[-1], "run.json", "not valid JSON")
case("eval_run_record_null",
     lambda ws, d: ((d / "art" / "r").mkdir(parents=True), (d / "art" / "r" / "run.json").write_text("null"),
                    eval_args()(ws, d))[-1], "run.json", "'steps'")
CACHE_OPTION_CASES = {
    "limit_negative": (("--limit", "-1"), "--limit"),
    "limit_zero": (("--limit", "0"), "--limit"),
    "batch_zero": (("--batch-size", "0"), "--batch-size"),
    "shard_zero": (("--shard-size", "0"), "--shard-size"),
    "store_dtype": (("--store-dtype", "float8"), "float8"),
    "position": (("--positions", "middle"), "unknown position 'middle'"),
    "remote_without_nnsight": (("--remote",), "--backend nnsight"),
    "workers_zero": (("--ray", "local", "--workers", "0"), "--workers"),
    "gpus_nan": (("--ray", "local", "--gpus-per-worker", "nan"), "--gpus-per-worker"),
    "site": (("--sites", "blocks.1.hook_nothing"), "hook_nothing"),
}
for _name, (_options, _expect) in CACHE_OPTION_CASES.items():
    case(f"cache_option_{_name}", lambda ws, d, o=_options: ["cache", "--run", "r", "--model", ws.model, "--data",
                                                             ws.data, *o, "--artifacts", d / "art"], _expect)
case("cache_model_missing", lambda ws, d: ["cache", "--run", "r", "--model", d / "no-model", "--data", ws.data,
                                           "--artifacts", d / "art"], "no-model")
case("model_config_not_json", model_copy(lambda m: (m / "config.json").write_text("{")), "model", "config.json")
case("model_config_null", model_copy(lambda m: (m / "config.json").write_text("null")), "model")
case("model_weights_truncated",
     model_copy(lambda m: files.truncated(m / "model.safetensors", m / "model.safetensors", 1000)), "model")
case("model_no_config", model_copy(lambda m: (m / "config.json").unlink()), "no config.json")
case("model_no_tokenizer", model_copy(lambda m: [p.unlink() for p in m.glob("*token*")]), "model")
case("model_gguf_truncated", lambda ws, d: ["cache", "--run", "r", "--model", files.truncated(ws.gguf, d / "m.gguf", 100),
                                            "--data", ws.data, "--artifacts", d / "art"], "m.gguf")
case("cache_artifacts_is_file", lambda ws, d: ["cache", "--run", "r", "--model", ws.model, "--data", ws.data,
                                               "--artifacts", a_file(d)], "a-file", "is a file")
case("probe_n_negative", probe_args("--n", "-1"), "--n")
case("probe_n_boot_zero", probe_args("--n-boot", "0"), "--n-boot")
case("probe_layers_words", probe_args("--layers", "x"), "--layers")
case("probe_no_run", lambda ws, d: ["probe", "--artifacts", d], "--run NAME or --config FILE")
case("probe_config_missing", lambda ws, d: ["probe", "--config", d / "none.yaml"], "none.yaml", "no such probe config")
case("probe_config_bad_yaml", config_file("c.yaml", "runs: [\n  {run: a\n"), "c.yaml", "cannot read the probe config")
case("probe_config_not_mapping", config_file("c.yaml", "- a\n- b\n"), "c.yaml", "'runs' list")
case("probe_config_unknown_field", config_file("c.yaml", "runs:\n  - run: a\n    layerz: 3\n"), "c.yaml", "'layerz'")
case("probe_config_n_words", config_file("c.yaml", "runs:\n  - run: a\n    n: lots\n"), "c.yaml", "runs[0]", "'n'")
case("probe_config_tasks_number", config_file("c.yaml", "runs:\n  - run: a\n    tasks: 5\n"), "c.yaml", "'tasks'")
case("probe_config_defaults_list", config_file("c.yaml", "defaults: [1]\nruns:\n  - run: a\n"), "c.yaml")
case("probe_config_n_zero", config_file("c.yaml", "runs:\n  - run: a\n    n: 0\n"), "c.yaml", "runs[0]")
case("probe_config_json_deep", config_file("c.json", DEEP), "c.json", "nested too deeply")
case("probe_extra_bad", probe_args("--extra", "nothing"), "NAME=PATH::FORMAT")
case("probe_tasks_empty", probe_args("--tasks", ","), "--tasks", "none given")
case("probe_methods_unknown", probe_args("--methods", "svm"), "--methods", "'svm'")
case("probe_sources_unknown", probe_args("--sources", "vibes"), "--sources", "'vibes'")
case("eval_tasks_empty", lambda ws, d: ["eval", "--run", "r", "--model", ws.model, "--tasks", ",", "--artifacts", d],
     "--tasks", "no examples")
case("cache_option_backend", lambda ws, d: ["cache", "--run", "r", "--model", ws.model, "--data", ws.data, "--backend",
                                            "jax", "--artifacts", d / "art"], "--backend", "jax")
case("probe_artifacts_is_file", lambda ws, d: [*probe_args()(ws, d)[:-2], "--artifacts", a_file(d)], "is a file")
for _value in ("nan", "inf", "-inf"):
    case(f"export_strength_{_value}", export_args("--strength", _value), "--strength")
case("export_format_bad", lambda ws, d: ["export", "--vector", ws.vector, "--format", "onnx", "--out", d / "o"],
     "unknown format 'onnx'")
case("export_mode_bad", export_args("--mode", "twist"), "twist")
case("export_layers_missing", export_args("--layers", "7"), "no layer 7")
case("export_layers_backwards", export_args("--layers", "3-1"), "runs backwards")
case("export_out_is_folder", export_args(out=lambda d: d), "--out", "is a folder")
case("export_out_under_file", export_args(out=lambda d: a_file(d) / "o.safetensors"), "a-file", "is a file")
case("export_out_name_too_long", export_args(out=lambda d: d / ("o" * 300 + ".safetensors")), "--out", "too long")
case("export_out_exists", export_args(out=lambda d: a_file(d)), "exists", "--overwrite")
case("export_out_suffix_of_another_format",  # a GGUF under a .safetensors name would be read as the wrong format
     lambda ws, d: ["export", "--vector", ws.vector, "--format", "gguf", "--strength", "2", "--out", d / "x.safetensors"],
     "--out x.safetensors", "a gguf export is a .gguf file")
case("export_gguf_layer_beyond_recorded_model",  # no --model: checked against the model the vector records
     lambda ws, d: ["export", "--vector", layer_vector(50, embedded=True)(ws, d), "--format", "gguf", "--strength", "2",
                    "--out", d / "v.gguf"], "vector layer 50", "30 layers (0..29)")
case("export_layer_beyond_model", lambda ws, d: ["export", "--vector", layer_vector(50)(ws, d), "--format",
                                                 "safetensors", "--model", ws.model, "--out", d / "v.safetensors"],
     "vector layer 50", "4 layers (0..3) of the model")
case("export_hf_folded_without_model",
     lambda ws, d: ["export", "--vector", ws.vector, "--format", "hf-folded", "--out", d / "m"], "pass --model")
case("export_measured_missing", export_args("--measured", "/nonexistent/m.json"), "m.json", "no such --measured")
case("export_measured_null", measured("null"), "m.json", "JSON null")
case("export_measured_nan", measured('{"gain": NaN}'), "m.json", "NaN")
case("export_measured_deep", measured(DEEP), "m.json", "nested too deeply")
case("export_measured_bad_json", measured('{"gain": 1,}'), "m.json", "line 1", "not valid JSON")
case("verify_missing", lambda ws, d: ["verify-export", d / "none.gguf", "--model", ws.model], "none.gguf",
     "no such file or folder")
case("verify_report_is_folder", lambda ws, d: ["verify-export", ws.gguf, "--model", ws.model, "--report", d],
     "--report", "is a folder")
case("verify_strength_nan", lambda ws, d: ["verify-export", ws.gguf, "--model", ws.model, "--strength", "nan"],
     "--strength")
case("verify_truncated_gguf",  # documented: verification runs and fails (exit 1), naming the file
     lambda ws, d: ["verify-export", files.truncated(ws.gguf, d / "t.gguf", 50), "--model", ws.model], "t.gguf", "FAIL",
     code=1)
SWEEP_OPTION_CASES = {
    "strengths_nan": (("--strengths", "1,nan"), "--strengths"),
    "strengths_words": (("--strengths", "a,b"), "--strengths"),
    "n_test_negative": (("--n-test", "-1"), "--n-test"),
    "test_fraction_two": (("--test-fraction", "2"), "--test-fraction"),
    "budget_nan": (("--budget", "nan"), "--budget"),
    "layers_backwards": (("--layers", "3-1"), "runs backwards"),
    "layer_outside_model": (("--layers", "10"), "outside the model's 4 layers"),
    "k_batch_zero": (("--k-batch", "0"), "--k-batch"),
    "gen_prompts_negative": (("--gen-prompts", "-1"), "--gen-prompts"),
    "positions_bad": (("--positions", "sideways"), "sideways"),
    "mode_bad": (("--mode", "twist"), "twist"),
    "gate_bad": (("--gate", "maybe"), "maybe"),
    "method_bad": (("--method", "telepathy"), "telepathy"),
}
for _name, (_options, _expect) in SWEEP_OPTION_CASES.items():
    case(f"sweep_{_name}", sweep_args(*_options), _expect)
case("sweep_vector_missing", sweep_args("--vector", "/nonexistent/v.safetensors", "--layers", "1"), "v.safetensors",
     "no such vector file")
case("sweep_arc_missing", sweep_args("--arc", "/nonexistent/arc.jsonl", "--n-arc", "2"), "arc.jsonl", "no such file")
case("sweep_arc_without_n_arc", lambda ws, d: sweep_args("--arc", ws.data)(ws, d), "--n-arc")
case("probe_extra_missing_file", probe_args("--extra", "x=/nonexistent/c.json::caa"), "--extra", "c.json")
case("sweep_artifacts_is_file", lambda ws, d: [*sweep_args()(ws, d)[:-2], "--artifacts", a_file(d)], "is a file")
case("analyze_what_bad", lambda ws, d: ["analyze", "--run", "r", "--what", "vibes", "--artifacts", d], "--what")
case("analyze_ks_bad", lambda ws, d: ["analyze", "--run", "r", "--what", "heads", "--ks", "a", "--artifacts", d], "--ks")
case("analyze_n_pairs_zero", lambda ws, d: ["analyze", "--run", "r", "--what", "dla", "--n-pairs", "0"], "--n-pairs")
case("analyze_direction_missing", lambda ws, d: ["analyze", "--run", "r", "--what", "dla", "--model", ws.model,
                                                 "--direction", d / "none.safetensors", "--artifacts", d / "art"],
     "none.safetensors", "no such vector file")
case("analyze_artifacts_is_file", lambda ws, d: ["analyze", "--run", "r", "--what", "dla", "--model", ws.model,
                                                 "--artifacts", a_file(d)], "is a file")
case("app_artifacts_missing", lambda ws, d: ["app", "--artifacts", d / "none"], "no such folder")
case("app_port_zero", lambda ws, d: ["app", "--artifacts", d, "--port", "0"], "--port")
case("eval_seed_negative", eval_args("--seed", "-1"), "--seed")
case("probe_n_boot_huge", probe_args("--n-boot", "1000000000"), "--n-boot")
case("sweep_seed_too_big", lambda ws, d: sweep_args("--seed", str(2**40))(ws, d), "--seed")
case("sweep_record_damaged", damaged_sweep("sweep.json", b"{"), "sweep.json", "not valid JSON")
case("sweep_record_null", damaged_sweep("sweep.json", b"null"), "sweep.json", "JSON null")
case("sweep_cells_damaged", damaged_sweep("cells.parquet", b"PAR1 not really"), "cells.parquet", "not a readable table")
case("eval_two_megabyte_question",  # refused by the context check before any tensor is built
     eval_data(lambda d: data_with(d, json.dumps(good_record(8, turns=[{"role": "user", "content": "why " * 500_000}])))),
     "example 'r8'", "context of 512 tokens")
case("eval_format_without_data", eval_args("--format", "caa"), "--format", "without --data")
case("sweep_strengths_empty", lambda ws, d: sweep_args("--strengths", "")(ws, d), "--strengths")
case("sweep_layers_empty", lambda ws, d: sweep_args("--layers", "")(ws, d), "--layers")
case("steer_layers_empty", steer_args("--prompt", "hi", "--layers", ""), "--layers")
case("steer_strength_overflows", steer_args("--prompt", "hi", "--strength", "1e38"), "--strength", "overflows")
case("export_strength_overflows", export_args("--strength", "1e38"), "--strength", "overflows")
