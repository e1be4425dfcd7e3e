"""`workbench`: cache, probe, eval, steer, sweep, export, verify-export, analyze, serve, app, demo.

`app` is the Typer application; each verb lives in its own module under
`workbench/commands/` and registers itself on import. Commands parse options
and call the packages; no logic lives here. Bad input never reaches the user
as a traceback: see `workbench.errors` (one `error:` line, exit status 2).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from workbench.errors import WorkbenchTyper, fail, finite

app = WorkbenchTyper(add_completion=False, no_args_is_help=True, help="The sycophancy workbench.")

ModelOpt = Annotated[str, typer.Option("--model", help="smollm2 | a .gguf file | an HF folder | a hub id")]
RunOpt = Annotated[str, typer.Option("--run", help="run name: outputs go to artifacts/<run>/")]
ArtifactsOpt = Annotated[Path | None, typer.Option("--artifacts", help="artifacts root (default ./artifacts)")]

COMMAND_MODULES = ("cache", "demo", "probe", "evaluate", "steer", "sweep", "export", "analyze", "serve", "app")


__all__ = ["app", "fail", "finite", "main"]


def _register() -> None:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(f"workbench.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"workbench.commands.{name}":
                raise


def main() -> None:
    app()


_register()
