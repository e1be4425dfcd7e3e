"""The bad-input corpus: one `Case` per bad input, across every command.

A case builds its bad input in its own folder from the good workspace and names
the command line; the test runs it and checks the exit status (2: refused with
one line; 0: a documented success such as a repaired store) and that the output
names what the case expects (file, line or record, field or option).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.badinput import files
from tests.badinput.files import DEEP, data_with, good_record, lines
from tests.badinput.workspace import Workspace

Build = Callable[[Workspace, Path], list[object]]
Check = Callable[[Workspace, Path, str], None]


@dataclass(frozen=True)
class Case:
    """One bad input: `build(ws, folder)` writes it and returns the command line."""

    name: str
    build: Build
    expect: tuple[str, ...]
    code: int = 2
    check: Check | None = None


CASES: list[Case] = []


def case(name: str, build: Build, *expect: str, code: int = 2, check: Check | None = None) -> None:
    CASES.append(Case(name, build, expect, code, check))


# ---------------------------------------------------------------- data files (`cache --data`, `eval --data`)

def cache_data(make: Callable[[Path], Path]) -> Build:
    return lambda ws, d: ["cache", "--run", "r", "--model", ws.model, "--data", make(d), "--artifacts", d / "art"]


def eval_data(make: Callable[[Path], Path], *extra: str) -> Build:
    return lambda ws, d: ["eval", "--run", "r", "--model", ws.model, "--data", make(d), *extra,
                          "--artifacts", d / "art"]


RECORD_FIELD_CASES = {
    "missing_id": (good_record(5, id=None), "'id'"),
    "missing_pair_id": (good_record(5, pair_id=None), "'pair_id'"),
    "missing_turns": (good_record(5, turns=None), "'turns'"),
    "turns_not_list": (good_record(5, turns="hello"), "'turns'"),
    "turns_empty": (good_record(5, turns=[]), "'turns'"),
    "bad_role": (good_record(5, turns=[{"role": "bot", "content": "x"}]), "turns[0]"),
    "content_not_string": (good_record(5, turns=[{"role": "user", "content": 5}]), "turns[0]"),
    "correct_out_of_range": (good_record(5, correct=5), "'correct'"),
    "sycophantic_string": (good_record(5, sycophantic="A"), "'sycophantic'"),
    "claim_not_in_turn": (good_record(5, user_claim="zzz"), "'user_claim'"),
    "answer_number": (good_record(5, answer=5), "'answer'"),
    "meta_list": (good_record(5, meta=[1, 2]), "'meta'"),
    "choices_string": (good_record(5, choices="ab"), "'choices'"),
    "unknown_field": (good_record(5, colour="red"), "'colour'"),
    "empty_task": (good_record(5, task=""), "'task'"),
    "id_number": (good_record(5, id=5), "'id'"),
}
for _name, (_record, _field) in RECORD_FIELD_CASES.items():
    case(f"cache_data_{_name}", cache_data(lambda d, r=_record: data_with(d, json.dumps(r))),
         "data.jsonl, line 3", _field)
case("cache_data_lone_surrogate", cache_data(lambda d: data_with(d, json.dumps(good_record(4)).replace("What", "\\ud800What"))),
     "data.jsonl, line 3", "surrogate")
case("steer_prompts_lone_surrogate", lambda ws, d: prompts("p.jsonl", ['{"prompt": "a\\udc00b"}'])(ws, d), "p.jsonl, line 1",
     "surrogate")
case("cache_data_not_json", cache_data(lambda d: data_with(d, '{"id": "x",')), "data.jsonl, line 3", "not valid JSON")
case("cache_data_duplicate_id", cache_data(lambda d: data_with(d, json.dumps(good_record(1)))),
     "line 3", "repeats line 1")
case("cache_data_record_array", cache_data(lambda d: data_with(d, "[1, 2]")), "line 3", "JSON object")
case("cache_data_record_null", cache_data(lambda d: data_with(d, "null")), "line 3", "JSON object")
case("cache_data_deep", cache_data(lambda d: data_with(d, DEEP)), "line 3", "nested too deeply")
case("cache_data_empty", cache_data(lambda d: lines(d / "e.jsonl", [])), "e.jsonl", "holds no records")
case("cache_data_blank", cache_data(lambda d: lines(d / "b.jsonl", ["", "  ", ""])), "b.jsonl", "holds no records")
case("cache_data_not_utf8", cache_data(lambda d: (d / "u.jsonl").write_bytes(b"\xff\xfe{}\n") and d / "u.jsonl"),
     "u.jsonl", "not UTF-8")
case("cache_data_line_numbers_after_u2028",
     cache_data(lambda d: lines(d / "s.jsonl", [json.dumps(good_record(1, turns=[{"role": "user", "content": "a\u2028b\x1cc"}]),
                                                           ensure_ascii=False), json.dumps(good_record(2)), "",
                                                "{oops"])), "s.jsonl, line 4")
case("cache_data_crlf", cache_data(lambda d: lines(d / "c.jsonl", [json.dumps(good_record(1)), "", "{oops"], "\r\n")),
     "c.jsonl, line 3")
case("cache_data_cr", cache_data(lambda d: lines(d / "m.jsonl", [json.dumps(good_record(1)), "{oops"], "\r")),
     "m.jsonl, line 2")
case("cache_data_folder", cache_data(lambda d: d), "neither a built-in task")
case("cache_data_missing", cache_data(lambda d: d / "nothing.jsonl"), "nothing.jsonl", "neither a built-in task")
case("cache_data_longer_than_context",
     cache_data(lambda d: data_with(d, json.dumps(good_record(7, turns=[{"role": "user", "content": "two " * 1500}])))),
     "example 'r7'", "context of 512 tokens")

case("eval_data_missing_field", eval_data(lambda d: data_with(d, json.dumps(good_record(5, pair_id=None)), at=2)),
     "data.jsonl, line 2", "'pair_id'")
case("eval_caa_jsonl_not_array",
     eval_data(lambda d: lines(d / "caa.json", ['{"question": "q"}', '{"question": "r"}']), "--format", "caa"),
     "caa.json", "JSON array")
case("eval_caa_missing_field",
     eval_data(lambda d: (d / "caa.json").write_text(json.dumps([
         {"question": "Q?\n (A) yes\n (B) no", "answer_matching_behavior": " (A)",
          "answer_not_matching_behavior": " (B)"},
         {"question": "Q?\n (A) yes\n (B) no", "answer_not_matching_behavior": " (B)"}])) and d / "caa.json",
         "--format", "caa"), "caa.json, record 2", "answer_matching_behavior")
case("eval_caa_deep", eval_data(lambda d: (d / "deep.json").write_text(DEEP) and d / "deep.json", "--format", "caa"),
     "deep.json", "nested too deeply")
case("eval_anthropic_bad_line",
     eval_data(lambda d: lines(d / "a.jsonl", [json.dumps({"question": "Q? (A) y (B) n", "answer_matching_behavior": " (A)",
                                                             "answer_not_matching_behavior": " (B)"}), "{bad"]),
               "--format", "anthropic"), "a.jsonl, line 2", "not valid JSON")
case("eval_format_unknown", eval_data(lambda d: data_with(d, json.dumps(good_record(3))), "--format", "xml"),
     "unknown format 'xml'")
case("eval_longer_than_context",
     eval_data(lambda d: data_with(d, json.dumps(good_record(7, turns=[{"role": "user", "content": "two " * 1500}])))),
     "example 'r7'", "context of 512 tokens")


# ---------------------------------------------------------------- CLI numbers, names and output paths

def eval_args(*extra: object) -> Build:
    return lambda ws, d: ["eval", "--run", "r", "--model", ws.model, "--tasks", "answer", "--n", "2",
                          "--artifacts", d / "art", *extra]


def a_file(d: Path) -> Path:
    path = d / "a-file"
    path.write_text("not a folder")
    return path


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


def model_copy(damage: Callable[[Path], object]) -> Build:
    """`cache` with a damaged copy of the tiny model folder."""
    def build(ws: Workspace, d: Path) -> list[object]:
        model = d / "model"
        shutil.copytree(ws.model, model)
        damage(model)
        return ["cache", "--run", "r", "--model", model, "--data", ws.data, "--artifacts", d / "art"]
    return build


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


# ---------------------------------------------------------------- activation stores (`cache` resumes a copy)

def store_case(damage: Callable[[Path], object]) -> Build:
    def build(ws: Workspace, d: Path) -> list[object]:
        artifacts, store = ws.store_copy(d.name)
        damage(store)
        return ws.cache_args(artifacts)
    return build


def manifest_edit(change: Callable[[dict], object]) -> Callable[[Path], object]:
    def damage(store: Path) -> None:
        manifest = json.loads((store / "manifest.json").read_text())
        change(manifest)
        (store / "manifest.json").write_text(json.dumps(manifest))
    return damage


def same_as_good(ws: Workspace, d: Path, output: str) -> None:
    """The repaired store equals the uninterrupted one, shard for shard, and reads without NaN."""
    from interp.store import ActivationStore

    good = ws.store_run / "good" / "activations"
    fixed = d / "art" / "good" / "activations"
    names = sorted(p.name for p in good.glob("shard-*.safetensors"))
    assert sorted(p.name for p in fixed.glob("shard-*.safetensors")) == names
    for name in names:
        assert (fixed / name).read_bytes() == (good / name).read_bytes(), name
    assert not [p.name for p in fixed.iterdir() if p.name.startswith(".")], "a temp file survived"
    assert not np.isnan(ActivationStore(fixed).get("blocks.1.hook_resid_post", "last_prompt")).any()


def _set(key: str, value: object) -> Callable[[dict], object]:
    return lambda m: m.__setitem__(key, value)


case("store_manifest_null", store_case(lambda s: (s / "manifest.json").write_text("null")), "manifest.json", "JSON null")
case("store_manifest_not_json", store_case(lambda s: (s / "manifest.json").write_text("{\"sites\": [")),
     "manifest.json", "not valid JSON")
case("store_manifest_deep", store_case(lambda s: (s / "manifest.json").write_text(DEEP)), "manifest.json",
     "nested too deeply")
case("store_manifest_folder", store_case(lambda s: ((s / "manifest.json").unlink(), (s / "manifest.json").mkdir())),
     "manifest.json", "is a folder")
case("store_manifest_no_shards", store_case(manifest_edit(lambda m: m.pop("shards"))), "manifest.json", "'shards'")
case("store_manifest_shards_string", store_case(manifest_edit(_set("shards", "x"))), "manifest.json", "'shards'")
case("store_manifest_n_negative", store_case(manifest_edit(_set("n_examples", -3))), "manifest.json", "'n_examples'")
case("store_manifest_complete_string", store_case(manifest_edit(_set("complete", "maybe"))), "manifest.json",
     "'complete'")
case("store_manifest_shard_bytes", store_case(manifest_edit(lambda m: m["shards"][0].__setitem__("bytes", "x"))),
     "manifest.json", "'shards.0.bytes'")
case("store_shard_truncated", store_case(lambda s: files.truncated(s / "shard-00001.safetensors",
                                                                   s / "shard-00001.safetensors", 100)),
     "shard-00001.safetensors", "recomputing", code=0, check=same_as_good)
case("store_shard_deleted", store_case(lambda s: (s / "shard-00002.safetensors").unlink()),
     "shard-00002.safetensors", "recomputing", code=0, check=same_as_good)
case("store_shard_and_entry_deleted",  # the old error's advice: it used to leave NaN rows in a "complete" store
     store_case(lambda s: ((s / "shard-00001.safetensors").unlink(),
                           manifest_edit(lambda m: m["shards"].pop(1))(s))), "recomputing", code=0, check=same_as_good)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))


case("store_shard_same_size_other_bytes", store_case(lambda s: _flip(s / "shard-00000.safetensors")),
     "sha256", "recomputing", code=0, check=same_as_good)
case("store_shard_swapped", store_case(lambda s: (s / "shard-00000.safetensors").write_bytes(
    (s / "shard-00001.safetensors").read_bytes())), "shard-00000.safetensors", code=0, check=same_as_good)
case("store_examples_deleted", store_case(lambda s: (s / "examples.jsonl").unlink()), "rewrote examples.jsonl",
     code=0, check=same_as_good)
case("store_temp_files", store_case(lambda s: ((s / ".tmpAbC123").write_bytes(b"x" * 1000),
                                               (s / ".shard-00003.safetensors.k2j3.tmp").write_bytes(b"y"))),
     "removed .tmpAbC123", code=0, check=same_as_good)


# ---------------------------------------------------------------- probe

def probe_args(*extra: object) -> Build:
    return lambda ws, d: ["probe", "--run", "r", "--model", ws.model, "--n", "2", "--tasks", "answer",
                          "--artifacts", d / "art", *extra]


def config_file(name: str, text: str) -> Build:
    def build(ws: Workspace, d: Path) -> list[object]:
        (d / name).write_text(text)
        return ["probe", "--config", d / name, "--artifacts", d / "art"]
    return build


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


# ---------------------------------------------------------------- steer: options and prompt files

def steer_args(*extra: object, vector: Callable[[Workspace, Path], object] | None = None) -> Build:
    return lambda ws, d: ["steer", "--vector", vector(ws, d) if vector else ws.vector, "--strength", "2",
                          "--model", ws.model, "--max-new-tokens", "2", *extra]


def prompts(name: str, rows: list[str] | bytes) -> Build:
    def build(ws: Workspace, d: Path) -> list[object]:
        path = d / name
        if isinstance(rows, bytes):
            path.write_bytes(rows)
        else:
            lines(path, rows)
        return steer_args("--prompts", path)(ws, d)
    return build


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


def gate_file(make: Callable[[Workspace, Path], Path]) -> Build:
    return lambda ws, d: steer_args("--prompt", "hi", "--gate", make(ws, d))(ws, d)




def other_model_vector(ws: Workspace, d: Path) -> Path:
    """A valid vector for a model 32 wide (the tiny model is 64)."""
    from steering.vector import SteeringVector

    return SteeringVector({1: np.ones(32, np.float32)}, method="x", d_model=32).save(d / "v32.safetensors")


def other_hash_vector(ws: Workspace, d: Path) -> Path:
    header, tensors = files.header_of(ws.vector)
    return files.retagged(ws.vector, d / "vh.safetensors", header={**header, "model_hash": "f" * 64})


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


# ---------------------------------------------------------------- vector files (`export --vector`)

def export_from(make: Callable[[Workspace, Path], object], *extra: object) -> Build:
    return lambda ws, d: ["export", "--vector", make(ws, d), "--format", "safetensors", "--strength", "1",
                          "--out", d / "out.safetensors", *extra]


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


# ---------------------------------------------------------------- export options and outputs

def export_args(*extra: object, out: Callable[[Path], object] | None = None) -> Build:
    return lambda ws, d: ["export", "--vector", ws.vector, "--format", "safetensors",
                          "--out", out(d) if out else d / "o.safetensors", *extra]


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
case("export_hf_folded_without_model",
     lambda ws, d: ["export", "--vector", ws.vector, "--format", "hf-folded", "--out", d / "m"], "pass --model")


def measured(text: str) -> Build:
    def build(ws: Workspace, d: Path) -> list[object]:
        (d / "m.json").write_text(text)
        return export_args("--measured", d / "m.json")(ws, d)
    return build


case("export_measured_missing", export_args("--measured", "/nonexistent/m.json"), "m.json", "no such --measured")
case("export_measured_null", measured("null"), "m.json", "JSON null")
case("export_measured_nan", measured('{"gain": NaN}'), "m.json", "NaN")
case("export_measured_deep", measured(DEEP), "m.json", "nested too deeply")
case("export_measured_bad_json", measured('{"gain": 1,}'), "m.json", "line 1", "not valid JSON")


# ---------------------------------------------------------------- GGUF control vectors (`export --vector x.gguf`)

def gguf_export(make: Callable[[Workspace, Path], Path]) -> Build:
    return export_from(make)


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


# ---------------------------------------------------------------- verify-export, sweep, analyze, app

case("verify_missing", lambda ws, d: ["verify-export", d / "none.gguf", "--model", ws.model], "none.gguf",
     "no such file or folder")
case("verify_report_is_folder", lambda ws, d: ["verify-export", ws.gguf, "--model", ws.model, "--report", d],
     "--report", "is a folder")
case("verify_strength_nan", lambda ws, d: ["verify-export", ws.gguf, "--model", ws.model, "--strength", "nan"],
     "--strength")
case("verify_truncated_gguf",  # documented: verification runs and fails (exit 1), naming the file
     lambda ws, d: ["verify-export", files.truncated(ws.gguf, d / "t.gguf", 50), "--model", ws.model], "t.gguf", "FAIL",
     code=1)


def sweep_args(*extra: object) -> Build:
    return lambda ws, d: ["sweep", "--run", "r", "--model", ws.model, "--quick", "--layers", "1", "--artifacts", d / "art",
                          *extra]


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


def damaged_sweep(name: str, content: bytes) -> Build:
    """A sweep run whose `name` (under artifacts/r/sweep) is damaged before the sweep resumes."""
    def build(ws: Workspace, d: Path) -> list[object]:
        folder = d / "art" / "r" / "sweep"
        folder.mkdir(parents=True)
        (folder / name).write_bytes(content)
        return sweep_args()(ws, d)
    return build


case("sweep_record_damaged", damaged_sweep("sweep.json", b"{"), "sweep.json", "not valid JSON")
case("sweep_record_null", damaged_sweep("sweep.json", b"null"), "sweep.json", "JSON null")
case("sweep_cells_damaged", damaged_sweep("cells.parquet", b"PAR1 not really"), "cells.parquet", "not a readable table")
case("eval_two_megabyte_question",  # refused by the context check before any tensor is built
     eval_data(lambda d: data_with(d, json.dumps(good_record(8, turns=[{"role": "user", "content": "why " * 500_000}])))),
     "example 'r8'", "context of 512 tokens")
