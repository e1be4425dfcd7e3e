"""The one loader of the task generators' packaged JSONL files (`load_package_jsonl`), used by feedback and mimicry."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

import interp.tasks.jsonrecords as jsonrecords
from interp.tasks.feedback import FeedbackItem, load_feedback_items
from interp.tasks.jsonrecords import TaskDataError, load_package_jsonl, read_package_text
from interp.tasks.mimicry import Attribution, load_attributions


@dataclass(frozen=True)
class Pet:
    id: str
    kind: str


def _no_fish(pet: Pet) -> str | None:
    return "field 'kind' must not be 'fish'" if pet.kind == "fish" else None


def _load(monkeypatch: pytest.MonkeyPatch, rows: list[object]) -> tuple[Pet, ...]:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    monkeypatch.setattr(jsonrecords, "read_package_text", lambda name: (f"interp/tasks/data/{name}", text))
    return load_package_jsonl("pets.jsonl", Pet, ("id", "kind"), _no_fish)


def test_both_generators_read_their_files_through_it() -> None:
    label, text = read_package_text("feedback.jsonl")
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert label == "interp/tasks/data/feedback.jsonl"
    assert load_feedback_items() == tuple(FeedbackItem(**r) for r in lines)
    assert load_attributions() == load_package_jsonl("mimicry.jsonl", Attribution,
                                                     ("id", "kind", "subject", "person", "wrong"), lambda a: None)


def test_records_are_built_in_field_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _load(monkeypatch, [{"kind": "cat", "id": "p1"}, {"id": "p2", "kind": "dog"}]) == (
        Pet("p1", "cat"), Pet("p2", "dog"))


@pytest.mark.parametrize(("rows", "needle"), [
    ([{"id": "p1", "kind": "cat"}, {"id": "p2"}], "line 2: missing field 'kind'"),
    ([{"id": "p1", "kind": "cat"}, {"id": "p2", "kind": ""}], "line 2: field 'kind' must be a non-empty string"),
    ([{"id": "p1", "kind": "cat"}, ["p2", "dog"]], "line 2: record must be a JSON object"),
    ([{"id": "p1", "kind": "cat"}, {"id": "p1", "kind": "dog"}], "line 2: field 'id' 'p1' repeats"),
    ([{"id": "p1", "kind": "cat"}, {"id": "p2", "kind": "fish"}], "line 2: field 'kind' must not be 'fish'"),
])
def test_a_bad_record_names_the_file_line_and_field(monkeypatch: pytest.MonkeyPatch, rows: list[object],
                                                    needle: str) -> None:
    with pytest.raises(TaskDataError) as info:
        _load(monkeypatch, rows)
    assert str(info.value).startswith(f"interp/tasks/data/pets.jsonl, {needle}"), str(info.value)
