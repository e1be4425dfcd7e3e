"""Corpus cases: prompt files, steering vectors, probe gates and GGUF control vectors."""

from __future__ import annotations

import json
import math
import os

import numpy as np

from tests.badinput import files
from tests.badinput.cases import (
    case,
    export_from,
    gate_file,
    gguf_export,
    other_hash_vector,
    other_model_vector,
    prompts,
    steer_args,
    sweep_args,
)
from tests.badinput.files import DEEP

case("steer_strength_nan", lambda ws, d: ["steer", "--vector", ws.vector, "--strength", "nan", "--prompt", "hi"],
     "--strength")
case("steer_strength_inf", lambda ws, d: ["steer", "--vector", ws.vector, "--strength", "inf", "--prompt", "hi"],
     "--strength")
case("steer_prompt_empty", steer_args("--prompt", ""), "--prompt", "empty")
case("steer_prompt_spaces", steer_args("--prompt", "   "), "--prompt", "empty")
case("steer_prompt_too_long", steer_args("--prompt", "x" * 250_000), "--prompt", "too long")
case("steer_prompt_longer_than_context", steer_args("--prompt", "two " * 1500), "prompt 1", "context of 512 tokens")
case("steer_prompt_truncated_when_asked",  # documented success: cut to fit, and said so with the numbers
     steer_args("--prompt", "two " * 1500, "--truncate"), "dropped its first", "context of 512 tokens", code=0)
case("steer_no_prompt", steer_args(), "exactly one of --prompt or --prompts")
case("steer_max_new_tokens_zero", lambda ws, d: ["steer", "--vector", ws.vector, "--strength", "1", "--prompt", "hi",
                                                 "--max-new-tokens", "0"], "--max-new-tokens")
case("steer_prompts_missing", steer_args("--prompts", "/nonexistent/p.txt"), "p.txt", "no such prompts file")
case("steer_prompts_folder", lambda ws, d: steer_args("--prompts", d)(ws, d), "is a folder")
case("steer_prompts_no_prompt_key", prompts("p.jsonl", ['{"prompt": "hi"}', '{"text": "hello"}']),
     "p.jsonl, line 2", "'prompt'")
case("steer_prompts_line_after_u2028", prompts("p.jsonl", [json.dumps({"prompt": "a\u2028b"}, ensure_ascii=False),
                                                            "", "{oops"]), "p.jsonl, line 3", "not valid JSON")
case("steer_prompts_prompt_number", prompts("p.jsonl", ['{"prompt": 5}']), "p.jsonl, line 1", "'prompt'")
case("steer_prompts_prompt_empty", prompts("p.jsonl", ['{"prompt": "ok"}', '{"prompt": ""}']), "line 2", "'prompt'")
case("steer_prompts_record_array", prompts("p.jsonl", ["[1, 2]"]), "p.jsonl, line 1", "JSON array")
case("steer_prompts_record_null", prompts("p.jsonl", ["null"]), "p.jsonl, line 1", "JSON null")
case("steer_prompts_bad_turns", prompts("p.jsonl", ['{"turns": "x"}']), "p.jsonl, line 1")
case("steer_prompts_empty", prompts("p.txt", ["", "  "]), "p.txt", "holds no prompts")
case("steer_prompts_not_utf8", prompts("p.txt", b"hello\n\xff\xfe\n"), "p.txt", "not UTF-8")
case("steer_prompts_deep", prompts("p.jsonl", [DEEP]), "p.jsonl, line 1", "nested too deeply")
case("steer_prompts_line_too_long", prompts("p.txt", ["hi", "y" * 250_000]), "p.txt, line 2", "too long")
case("steer_vector_missing", steer_args("--prompt", "hi", vector=lambda ws, d: d / "none.safetensors"),
     "none.safetensors", "no such vector file")
case("steer_vector_txt", steer_args("--prompt", "hi", vector=lambda ws, d: d / "v.txt"), "v.txt", "not a vector file")
case("steer_layers_words", steer_args("--prompt", "hi", "--layers", "a-b"), "--layers")
case("steer_layers_not_in_vector", steer_args("--prompt", "hi", "--layers", "0"), "layer 0")
case("steer_positions_bad", steer_args("--prompt", "hi", "--positions", "sideways"), "sideways")
case("steer_mode_bad", steer_args("--prompt", "hi", "--mode", "twist"), "twist")
case("steer_vector_other_width", steer_args("--prompt", "hi", vector=other_model_vector), "v32.safetensors",
     "d_model 32")
case("steer_vector_other_model", steer_args("--prompt", "hi", vector=other_hash_vector), "vh.safetensors", "--force")
case("export_vector_other_width", lambda ws, d: ["export", "--vector", other_model_vector(ws, d), "--format",
                                                 "hf-folded", "--model", ws.model, "--out", d / "m"],
     "v32.safetensors", "d_model 32")
case("sweep_vector_other_width", lambda ws, d: sweep_args("--vector", other_model_vector(ws, d), "--method", "caa")(ws, d),
     "v32.safetensors", "d_model 32")
case("analyze_direction_other_width", lambda ws, d: ["analyze", "--run", "r", "--what", "dla", "--model", ws.model,
                                                     "--direction", other_model_vector(ws, d), "--artifacts", d / "art"],
     "v32.safetensors", "d_model 32")
case("gate_missing", gate_file(lambda ws, d: d / "g.safetensors"), "g.safetensors", "no such gate file")
case("gate_random_bytes", gate_file(lambda ws, d: (d / "g.safetensors").write_bytes(os.urandom(300)) and d / "g.safetensors"),
     "g.safetensors", "not a safetensors gate file")
case("gate_truncated", gate_file(lambda ws, d: files.truncated(ws.gate, d / "g.safetensors", 40)), "g.safetensors",
     "not a safetensors gate file")
case("gate_no_bias", gate_file(lambda ws, d: files.without(ws.gate, d / "g.safetensors", "bias")), "g.safetensors", "'bias'")
case("gate_bias_words", gate_file(lambda ws, d: files.with_field(ws.gate, d / "g.safetensors", "bias", "abc")),
     "g.safetensors", "'bias'")
case("gate_layer_float", gate_file(lambda ws, d: files.with_field(ws.gate, d / "g.safetensors", "layer", 1.5)),
     "g.safetensors", "'layer'")
case("gate_wrong_format", gate_file(lambda ws, d: files.with_field(ws.gate, d / "g.safetensors", "format", "x")),
     "g.safetensors", "'format'")
case("gate_no_direction", gate_file(lambda ws, d: files.retagged(ws.gate, d / "g.safetensors",
                                                                 tensors={"other": np.ones(64, np.float32)})),
     "g.safetensors", "'direction'")
case("gate_not_unit", gate_file(lambda ws, d: files.retagged(ws.gate, d / "g.safetensors",
                                                             tensors={"direction": np.ones(64, np.float32)})),
     "g.safetensors", "unit vector")
case("gate_threshold_nan", gate_file(lambda ws, d: files.with_field(ws.gate, d / "g.safetensors", "threshold", math.nan)),
     "g.safetensors", "threshold")
for _field in ("method", "d_model", "site_kind", "model_hash", "arch", "dataset_hash", "resid_norms", "positions", "meta"):
    case(f"vector_without_{_field}",
         export_from(lambda ws, d, f=_field: files.without(ws.vector, d / "v.safetensors", f)),
         "v.safetensors", f"'{_field}'")
VECTOR_FIELD_CASES = {
    "d_model_words": ("d_model", "abc"),
    "d_model_zero": ("d_model", 0),
    "positions_sideways": ("positions", "sideways"),
    "resid_norms_keys": ("resid_norms", {"x": 1.0}),
    "meta_list": ("meta", [1]),
    "method_empty": ("method", ""),
}
for _name, (_field, _value) in VECTOR_FIELD_CASES.items():
    case(f"vector_{_name}", export_from(lambda ws, d, f=_field, v=_value: files.with_field(ws.vector, d / "v.safetensors", f, v)),
         "v.safetensors", f"'{_field}")
case("vector_wrong_format", export_from(lambda ws, d: files.with_field(ws.vector, d / "v.safetensors", "format", "x/2")),
     "v.safetensors", "'format'")
case("vector_header_not_json", export_from(lambda ws, d: files.retagged(ws.vector, d / "v.safetensors", raw="{")),
     "v.safetensors", "no 'workbench' metadata")
case("vector_header_deep", export_from(lambda ws, d: files.retagged(ws.vector, d / "v.safetensors", raw=DEEP)),
     "v.safetensors", "nested too deeply")
case("vector_tensor_name", export_from(lambda ws, d: files.retagged(ws.vector, d / "v.safetensors",
                                                                    tensors={"foo": np.ones(64, np.float32)})),
     "v.safetensors", "'foo'")
case("vector_wrong_width", export_from(lambda ws, d: files.retagged(ws.vector, d / "v.safetensors",
                                                                    tensors={"layer.1": np.ones(10, np.float32)})),
     "v.safetensors", "shape")
case("vector_two_d", export_from(lambda ws, d: files.retagged(ws.vector, d / "v.safetensors",
                                                              tensors={"layer.1": np.ones((2, 64), np.float32)})),
     "v.safetensors", "shape")
case("vector_nan", export_from(lambda ws, d: files.retagged(ws.vector, d / "v.safetensors",
                                                            tensors={"layer.1": np.full(64, np.nan, np.float32)})),
     "v.safetensors", "NaN")
case("vector_no_tensors", export_from(lambda ws, d: files.retagged(ws.vector, d / "v.safetensors", tensors={})),
     "v.safetensors", "at least one layer")
for _keep in (8, 100, -16):
    case(f"vector_truncated_{_keep}", export_from(lambda ws, d, k=_keep: files.truncated(ws.vector, d / "v.safetensors", k)),
         "v.safetensors", "not a safetensors vector file")
case("vector_empty", export_from(lambda ws, d: files.truncated(ws.vector, d / "v.safetensors", 0)),
     "v.safetensors", "not a safetensors vector file")
case("vector_folder", export_from(lambda ws, d: (d / "v.safetensors").mkdir() or d / "v.safetensors"),
     "v.safetensors", "is not a file")
for _keep in (4, 16, 64, 300, -40):
    case(f"gguf_truncated_{_keep}", gguf_export(lambda ws, d, k=_keep: files.truncated(ws.gguf, d / "v.gguf", k)),
         "v.gguf", "GGUF")
case("gguf_random_bytes", gguf_export(lambda ws, d: (d / "v.gguf").write_bytes(os.urandom(2000)) and d / "v.gguf"),
     "v.gguf", "GGUF")
case("gguf_empty", gguf_export(lambda ws, d: files.truncated(ws.gguf, d / "v.gguf", 0)), "v.gguf", "GGUF")
case("gguf_export_bad_json", gguf_export(lambda ws, d: files.gguf(d / "v.gguf", export="{")), "v.gguf",
     "'workbench.export'", "not valid JSON")
case("gguf_export_null", gguf_export(lambda ws, d: files.gguf(d / "v.gguf", export="null")), "v.gguf",
     "'workbench.export'", "null")
case("gguf_export_other_version", gguf_export(lambda ws, d: files.gguf(d / "v.gguf", export='{"export_format": "x"}')),
     "v.gguf", "'workbench.export'")
case("gguf_export_deep", gguf_export(lambda ws, d: files.gguf(d / "v.gguf", export=DEEP[:20000] + DEEP[-20000:])),
     "v.gguf", "nested too deeply")
case("gguf_wrong_arch", gguf_export(lambda ws, d: files.gguf(d / "v.gguf", arch="llama")), "v.gguf",
     "general.architecture")
case("gguf_no_hint", gguf_export(lambda ws, d: files.gguf(d / "v.gguf", hint=None)), "v.gguf", "model_hint")
case("gguf_count_wrong", gguf_export(lambda ws, d: files.gguf(d / "v.gguf", count=7)), "v.gguf", "layer_count")
case("gguf_direction_0", gguf_export(lambda ws, d: files.gguf(d / "v.gguf", tensors={"direction.0": np.ones(64, np.float32)})),
     "v.gguf", "direction.0")
case("gguf_tensor_name", gguf_export(lambda ws, d: files.gguf(d / "v.gguf", tensors={"foo.1": np.ones(64, np.float32)})),
     "v.gguf", "'foo.1'")
case("gguf_nan", gguf_export(lambda ws, d: files.gguf(d / "v.gguf", tensors={"direction.1": np.full(64, np.nan, np.float32)})),
     "v.gguf", "NaN")
case("gguf_two_d", gguf_export(lambda ws, d: files.gguf(d / "v.gguf", tensors={"direction.1": np.ones((2, 32), np.float32)})),
     "v.gguf", "1-D")
case("gguf_lengths_differ", gguf_export(lambda ws, d: files.gguf(d / "v.gguf", tensors={
    "direction.1": np.ones(64, np.float32), "direction.2": np.ones(32, np.float32)})), "v.gguf", "differ in length")
