"""Run the bad-input corpus (tests/badinput/cases.py) against the CLI, in process, on the tiny model.

Every case must end with its documented exit status, name what it expects, and
never show a traceback or an "internal error".
"""

from __future__ import annotations

import pytest

from tests.badinput.cases import Case, all_cases
from tests.badinput.workspace import Workspace, invoke


def test_the_corpus_is_large_and_names_are_unique() -> None:
    names = [c.name for c in all_cases()]
    assert len(names) == len(set(names))
    assert len(names) >= 100
    families = {name.split("_")[0] for name in names}
    assert {"cache", "eval", "store", "probe", "steer", "gate", "vector", "export", "gguf", "verify", "sweep",
            "analyze", "app"} <= families


@pytest.mark.parametrize("case", all_cases(), ids=lambda c: c.name)
def test_bad_input(ws: Workspace, case: Case) -> None:
    args = case.build(ws, ws.case_dir(case.name))
    result = invoke(*args)
    output = result.output
    assert "Traceback" not in output and "internal error" not in output, output
    assert result.exit_code == case.code, f"{case.name}: exit {result.exit_code}\n{output}"
    for text in case.expect:
        assert text in output, f"{case.name}: {text!r} not in\n{output}"
    if case.code == 2:  # refused: exactly one `error:` line, which names what the case expects
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Usage:" not in output, output
        assert all(text in errors[0] for text in case.expect), output
    if case.check is not None:
        case.check(ws, ws.case_dir(case.name), output)
