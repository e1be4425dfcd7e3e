"""Corpus cases: data files (`cache --data`, `eval --data`), model files and activation stores."""

from __future__ import annotations

import json

from tests.badinput import files
from tests.badinput.cases import (
    cache_data,
    case,
    eval_data,
    flip_byte,
    manifest_edit,
    prompts,
    same_as_good,
    set_key,
    store_case,
)
from tests.badinput.files import DEEP, data_with, good_record, lines

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
case("eval_sycophancy_eval_empty_content",
     eval_data(lambda d: lines(d / "answer.jsonl", [
         json.dumps({"prompt": [{"type": "human", "content": "Which planet is the largest?"}]}),
         json.dumps({"prompt": [{"type": "human", "content": ""}], "base": {"question": "q"}})]),
         "--format", "sycophancy-eval"), "answer.jsonl, line 2", "'prompt[0].content'", "non-empty")
case("eval_format_unknown", eval_data(lambda d: data_with(d, json.dumps(good_record(3))), "--format", "xml"),
     "unknown format 'xml'")
case("eval_longer_than_context",
     eval_data(lambda d: data_with(d, json.dumps(good_record(7, turns=[{"role": "user", "content": "two " * 1500}])))),
     "example 'r7'", "context of 512 tokens")
case("store_manifest_null", store_case(lambda s: (s / "manifest.json").write_text("null")), "manifest.json", "JSON null")
case("store_manifest_not_json", store_case(lambda s: (s / "manifest.json").write_text("{\"sites\": [")),
     "manifest.json", "not valid JSON")
case("store_manifest_deep", store_case(lambda s: (s / "manifest.json").write_text(DEEP)), "manifest.json",
     "nested too deeply")
case("store_manifest_folder", store_case(lambda s: ((s / "manifest.json").unlink(), (s / "manifest.json").mkdir())),
     "manifest.json", "is a folder")
case("store_manifest_no_shards", store_case(manifest_edit(lambda m: m.pop("shards"))), "manifest.json", "'shards'")
case("store_manifest_shards_string", store_case(manifest_edit(set_key("shards", "x"))), "manifest.json", "'shards'")
case("store_manifest_n_negative", store_case(manifest_edit(set_key("n_examples", -3))), "manifest.json", "'n_examples'")
case("store_manifest_complete_string", store_case(manifest_edit(set_key("complete", "maybe"))), "manifest.json",
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
case("store_shard_same_size_other_bytes", store_case(lambda s: flip_byte(s / "shard-00000.safetensors")),
     "sha256", "recomputing", code=0, check=same_as_good)
case("store_shard_swapped", store_case(lambda s: (s / "shard-00000.safetensors").write_bytes(
    (s / "shard-00001.safetensors").read_bytes())), "shard-00000.safetensors", code=0, check=same_as_good)
case("store_examples_deleted", store_case(lambda s: (s / "examples.jsonl").unlink()), "rewrote examples.jsonl",
     code=0, check=same_as_good)
case("store_temp_files", store_case(lambda s: ((s / ".tmpAbC123").write_bytes(b"x" * 1000),
                                               (s / ".shard-00003.safetensors.k2j3.tmp").write_bytes(b"y"))),
     "removed .tmpAbC123", code=0, check=same_as_good)
case("store_manifest_n_examples_huge",  # a damaged count must not make the resume plan 10**12 shards
     store_case(manifest_edit(set_key("n_examples", 10**12))), "manifest.json", "'n_examples'")
case("store_manifest_shard_size_changed", store_case(manifest_edit(set_key("shard_size", 3))), "manifest.json",
     "'shard_size'")
