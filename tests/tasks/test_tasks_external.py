"""External loaders accept their formats and reject malformed input with file, line and field."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from interp.tasks import Example, ExampleFormatError, ExternalFormatError, load_external
from interp.tasks.external import EXTERNAL_FORMATS, load_anthropic_evals, load_arc, load_caa


def _jsonl(tmp_path: Path, name: str, records: Sequence[object], raw: dict[int, str] | None = None) -> Path:
    """Write records as JSONL; `raw` replaces given 0-based lines with literal text."""
    lines = [json.dumps(r) for r in records]
    for index, text in (raw or {}).items():
        lines[index] = text
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def assert_load_fails(loader: Callable[[Path], list[Example]], path: Path, *needles: str) -> str:
    with pytest.raises(ExternalFormatError) as info:
        loader(path)
    message = str(info.value)
    assert isinstance(info.value, ExampleFormatError)
    for needle in (str(path), *needles):
        assert needle in message, message
    return message


AB = [
    {
        "question": "I like cats.\n\nChoices:\n (A) Agree\n (B) Disagree",
        "answer_matching_behavior": " (A)",
        "answer_not_matching_behavior": " (B)",
    },
    {
        "question": "I dislike rain.\n (A) Rain is good\n (B) Rain is bad",
        "answer_matching_behavior": "(B)",
        "answer_not_matching_behavior": "(A)",
    },
]


def test_caa_json_array_becomes_sycophantic_honest_pairs(tmp_path: Path) -> None:
    path = tmp_path / "sycophancy.json"
    path.write_text(json.dumps(AB, indent=2), encoding="utf-8")
    examples = load_caa(path)
    assert [(ex.condition, ex.answer) for ex in examples] == [
        ("sycophantic", "(A"),
        ("honest", "(B"),
        ("sycophantic", "(B"),
        ("honest", "(A"),
    ]
    assert examples[0].pair_id == examples[1].pair_id != examples[2].pair_id
    assert examples[2].choices == ("A", "B") and examples[2].sycophantic == 1
    assert examples[0].turns[0].content == AB[0]["question"] and examples[0].task == "caa"


@pytest.mark.parametrize(
    ("records", "needles"),
    [
        (
            [AB[0], {"question": "Q\n (A) x\n (B) y", "answer_matching_behavior": "(A)"}],
            ("record 2", "'answer_not_matching_behavior'"),
        ),
        (
            [
                {
                    "question": "Q\n (A) x\n (B) y",
                    "answer_matching_behavior": "(C)",
                    "answer_not_matching_behavior": "(A)",
                }
            ],
            ("record 1", "'answer_matching_behavior'", "(C)"),
        ),
        ([AB[0], ["not", "an", "object"]], ("record 2", "JSON object")),
        (
            [{"question": "", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}],
            ("record 1", "'question'"),
        ),
        (
            [
                {
                    "question": "Q\n (A) x\n (B) y",
                    "answer_matching_behavior": "(A)",
                    "answer_not_matching_behavior": "Disagree",
                }
            ],
            ("record 1", "'answer_not_matching_behavior'"),
        ),
    ],
)
def test_caa_rejects_bad_records(tmp_path: Path, records: list[object], needles: tuple[str, ...]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    assert_load_fails(load_caa, path, *needles)


def test_caa_rejects_broken_json_and_non_arrays(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"question": "Q",\n  oops\n]', encoding="utf-8")
    assert_load_fails(load_caa, path, "line 3", "not valid JSON")
    path.write_text(json.dumps(AB[0]), encoding="utf-8")
    assert_load_fails(load_caa, path, "JSON array")
    path.write_text("[]", encoding="utf-8")
    assert_load_fails(load_caa, path, "no records")
    assert_load_fails(load_caa, tmp_path / "missing.json", "no such file")


def test_anthropic_jsonl_accepts_letters_lists_and_words(tmp_path: Path) -> None:
    records = [
        {**AB[0], "user_affiliation": "cat lover"},
        {
            "question": "Q\n (A) one\n (B) two\n (C) three",
            "answer_matching_behavior": " (C)",
            "answer_not_matching_behavior": [" (A)", " (B)"],
        },
        {
            "question": 'Is the following statement something you would say?\n"I like rain"',
            "answer_matching_behavior": " Yes",
            "answer_not_matching_behavior": " No",
        },
    ]
    examples = load_anthropic_evals(_jsonl(tmp_path, "sycophancy_on_nlp_survey.jsonl", records))
    assert len(examples) == 6 and {ex.task for ex in examples} == {"anthropic"}
    assert examples[0].meta["user_affiliation"] == "cat lover" and examples[0].meta["line"] == 1
    multi = examples[2:4]
    assert multi[0].choices == ("A", "B", "C") and multi[0].sycophantic == 2
    assert [ex.answer for ex in multi] == ["(C", "(A"] and multi[0].meta["not_matching"] == ["(A)", "(B)"]
    words = examples[4:6]
    assert [ex.answer for ex in words] == ["Yes", "No"] and words[0].choices == ("Yes", "No")


def test_anthropic_rejects_bad_lines(tmp_path: Path) -> None:
    good = AB[0]
    path = _jsonl(tmp_path, "a.jsonl", [good, good], raw={1: '{"question": "Q", '})
    assert_load_fails(load_anthropic_evals, path, "line 2", "not valid JSON")
    path = _jsonl(
        tmp_path, "b.jsonl", [good, good, {"answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}]
    )
    assert_load_fails(load_anthropic_evals, path, "line 3", "missing field 'question'")
    path = _jsonl(tmp_path, "c.jsonl", [{**good, "answer_not_matching_behavior": []}])
    assert_load_fails(load_anthropic_evals, path, "line 1", "'answer_not_matching_behavior'")


ARC_HF = {
    "id": "q1",
    "question": "Which is a planet?",
    "choices": {"label": ["A", "B", "C", "D"], "text": ["Mars", "Moon", "Sun", "Comet"]},
    "answerKey": "A",
}
ARC_LIST = {
    "id": "q2",
    "question": "What do plants need?",
    "choices": [
        {"label": "1", "text": "rock"},
        {"label": "2", "text": "light"},
        {"label": "3", "text": "metal"},
        {"label": "4", "text": "plastic"},
    ],
    "answerKey": "2",
}
ARC_ORIGINAL: dict[str, Any] = {
    "id": "q3",
    "question": {
        "stem": "Ice is water that is",
        "choices": [
            {"label": "A", "text": "frozen"},
            {"label": "B", "text": "boiling"},
            {"label": "C", "text": "a gas"},
        ],
    },
    "answerKey": "A",
}


def test_arc_accepts_hf_list_and_original_layouts(tmp_path: Path) -> None:
    examples = load_arc(_jsonl(tmp_path, "arc.jsonl", [ARC_HF, ARC_LIST, ARC_ORIGINAL]))
    assert [ex.choices[ex.correct] for ex in examples] == ["Mars", "light", "frozen"]  # type: ignore[index]
    assert {(ex.task, ex.condition) for ex in examples} == {("arc", "neutral")}
    assert examples[1].meta["labels"] == ["1", "2", "3", "4"]
    assert "Ice is water that is" in examples[2].turns[0].content
    assert len({ex.pair_id for ex in examples}) == 3


@pytest.mark.parametrize(
    ("bad", "needles"),
    [
        ({**ARC_HF, "answerKey": "E"}, ("'answerKey'", "A, B, C, D")),
        ({**ARC_LIST, "answerKey": "5"}, ("'answerKey'",)),
        ({k: v for k, v in ARC_HF.items() if k != "choices"}, ("'choices'",)),
        ({k: v for k, v in ARC_HF.items() if k != "answerKey"}, ("'answerKey'",)),
        ({**ARC_HF, "choices": {"label": ["A", "B"], "text": ["x"]}}, ("'choices'",)),
        ({**ARC_LIST, "choices": [{"label": "1"}, {"label": "2", "text": "y"}]}, ("'choices[0]'",)),
        ({**ARC_ORIGINAL, "question": {"choices": ARC_ORIGINAL["question"]["choices"]}}, ("'question.stem'",)),
        ({**ARC_HF, "id": "q0"}, ("'id'", "repeats")),
    ],
)
def test_arc_rejects_bad_records_naming_line_and_field(tmp_path: Path, bad: dict, needles: tuple[str, ...]) -> None:
    first = {**ARC_HF, "id": "q0"}
    path = _jsonl(tmp_path, "arc.jsonl", [first, bad])
    assert_load_fails(load_arc, path, "line 2", *needles)


def test_arc_rejects_a_bad_json_line(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, "arc.jsonl", [ARC_HF, ARC_LIST, ARC_HF], raw={2: "{'single': 'quotes'}"})
    assert_load_fails(load_arc, path, "line 3", "not valid JSON")


def test_load_external_dispatches_by_format(tmp_path: Path) -> None:
    assert set(EXTERNAL_FORMATS) == {"caa", "anthropic", "sycophancy-eval", "arc"}
    arc = _jsonl(tmp_path, "arc.jsonl", [ARC_HF])
    assert load_external(arc, "arc")[0].task == "arc"
    ab = _jsonl(tmp_path, "ab.jsonl", AB)
    assert load_external(ab, "anthropic")[0].task == "anthropic"
    with pytest.raises(ExternalFormatError, match="line 2: .*looks like JSONL"):
        load_external(ab, "caa")
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        load_external(arc, "xml")
