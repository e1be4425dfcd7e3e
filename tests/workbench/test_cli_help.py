"""Every registered command's `--help` works and prints its text as written.

The commands are read from the registered Click tree (not a list kept here), so a new
command or sub-command is covered by these tests as soon as it is registered.
"""

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from workbench.cli import app

runner = CliRunner()


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path in the tree below `command`, the root included, depth first.

    A group is anything with a `commands` mapping (typer vendors its own Click, so no isinstance).
    """
    paths = [path]
    for name, sub in getattr(command, "commands", {}).items():
        paths += _command_paths(sub, (*path, name))
    return paths


ROOT: Any = typer.main.get_command(app)  # a TyperGroup: its `commands` are what is registered
PATHS = _command_paths(ROOT)


def test_the_tree_holds_the_commands_and_is_read_from_the_app():
    names = {p[0] for p in PATHS if p}
    # a floor, not the list itself: the parametrised test below covers whatever is registered
    assert {"cache", "probe", "eval", "steer", "sweep", "export", "verify-export", "analyze", "serve", "app",
            "demo"} <= names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "workbench")
def test_help_exits_zero_with_usage_and_no_error(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.lstrip().startswith("Usage:")
    assert "--help" in result.output
    for bad in ("Traceback", "Error", "error:"):
        assert bad not in result.output, result.output


def test_top_level_help_lists_every_registered_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    first_words = {line.strip(" │").split(" ", 1)[0] for line in result.output.splitlines()}
    missing = set(ROOT.commands) - first_words
    assert not missing, result.output


def test_markup_like_option_help_is_printed_as_written():
    # rich would read `[/task+task]` as a closing tag (a crash) and `[@K]` as a tag (silently eaten)
    result = runner.invoke(app, ["sweep", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "learned [:target] [@positions] [#L+L] [/task+task]" in text
    assert "heads [@K]" in text


def test_probe_help_names_every_label_source():
    from probes.labels import LABEL_SOURCES

    result = runner.invoke(app, ["probe", "--help"], terminal_width=300)
    text = "".join(result.output.split())  # the help box wraps anywhere
    assert result.exit_code == 0 and all(name in text for name in LABEL_SOURCES), result.output
