"""How the CLI reports errors: every command's bad input becomes one `error:` line and exit status 2.

`WorkbenchTyper` wraps each command it registers in `one_line_errors` (an
`interp.errors.InputError`, any other `ValueError`, an `OSError` and the
packages' load errors become one line) and gives it `OneLineCommand` (a bad
option value or a missing option is one line too). An unexpected exception (a
bug, not bad input) prints one line with exit status 1; `WORKBENCH_DEBUG=1`
shows its traceback.

Example:
    >>> app = WorkbenchTyper(add_completion=False)
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from typer.core import TyperCommand
from typer.exceptions import TyperException

F = TypeVar("F", bound=Callable[..., Any])
#: set to 1 to see the traceback of an unexpected error instead of its one-line summary
DEBUG_ENV = "WORKBENCH_DEBUG"


def fail(message: str) -> NoReturn:
    """Print a one-line error (no traceback) and exit with status 2: the CLI's one printer of errors.

    Example:
        >>> fail("--layers 40: outside the model's layers 0..29")  # doctest: +SKIP
    """
    typer.secho(f"error: {' '.join(str(message).split())}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _reported() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the input was bad" and become one line with status 2."""
    from interp.capture.ray_pool import RayJobError, RayUnavailableError
    from interp.models.loading import ModelLoadError

    return (ValueError, OSError, RecursionError, MemoryError, ModelLoadError, RayJobError, RayUnavailableError)


def describe(error: BaseException) -> str:
    """One line for an exception: its message, with the file for an OSError.

    Example:
        >>> describe(FileNotFoundError(2, "No such file or directory", "g.safetensors"))
        'g.safetensors: No such file or directory'
    """
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    if isinstance(error, RecursionError):
        return "input nested too deeply to read (RecursionError)"
    if isinstance(error, MemoryError):
        return "input too large to hold in memory; use a smaller file or fewer items"
    return str(error) or type(error).__name__


def usage_message(error: BaseException) -> str | None:
    """The message of a usage error (a bad option value, a missing option), None for anything else."""
    if isinstance(error, TyperException) and getattr(error, "exit_code", None) == 2 and hasattr(error, "format_message"):
        return str(error.format_message())
    return None


class OneLineCommand(TyperCommand):
    """A command whose usage errors (`--n -1`, `--strength nan`, a missing option) are one `error:` line too."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except TyperException as e:
            message = usage_message(e)
            if message is None:
                raise
            fail(f"{message} (see `{ctx.command_path} --help`)")


def one_line_errors(command: F) -> F:
    """Wrap a command so bad input ends in one line and exit status 2, never a traceback.

    An unexpected exception (a bug, not bad input) also prints one line, with exit status 1;
    `WORKBENCH_DEBUG=1` shows its traceback.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, TyperException, KeyboardInterrupt) as e:  # typer's exits and usage errors
            message = usage_message(e)
            if message is not None:
                fail(message)
            raise
        except Exception as e:
            if isinstance(e, _reported()):
                fail(describe(e))
            if os.environ.get(DEBUG_ENV):
                raise
            typer.secho(f"error: internal error ({type(e).__name__}: {' '.join(str(e).split())}); "
                        f"set {DEBUG_ENV}=1 for the traceback", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=1) from None

    return wrapper  # type: ignore[return-value]


class WorkbenchTyper(typer.Typer):
    """A Typer whose every command is wrapped by `one_line_errors` and reports usage errors in one line.

    Help is plain text: rich markup is off (`rich_markup_mode=None`), so an option help such as
    `learned[:target][@positions][/task+task]` prints as written instead of being read as markup
    (where `[/task+task]` is a closing tag that crashes `--help` and `[@positions]` is silently eaten).

    Args:
        help: the group's help text.
        no_args_is_help: show the help when called without a command.
        add_completion: add the shell-completion options.
    """

    def __init__(self, *, help: str | None = None, no_args_is_help: bool = False, add_completion: bool = False) -> None:
        super().__init__(help=help, no_args_is_help=no_args_is_help, add_completion=add_completion,
                         rich_markup_mode=None, context_settings={"max_content_width": 100})

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        kwargs.setdefault("cls", OneLineCommand)
        register = super().command(*args, **kwargs)

        def decorator(f: F) -> F:
            register(one_line_errors(f))
            return f

        return decorator


def finite(value: float | None) -> float | None:
    """A Typer callback refusing NaN and inf (`--strength nan` would write NaN into a file)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


__all__ = ["DEBUG_ENV", "OneLineCommand", "WorkbenchTyper", "describe", "fail", "finite", "one_line_errors",
           "usage_message"]
