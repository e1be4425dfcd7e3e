"""Run the workbench CLI and SIGKILL it at a chosen moment: a kill -9 that lands where the test wants.

    python -m tests.badinput.killer rename <name part> <n> -- <workbench args>
        kill just before the n-th atomic rename onto a file whose name contains <name part>
        (the temp file is fully written, the target not yet replaced)
    python -m tests.badinput.killer safetensors-temp <unused> <n> -- <workbench args>
        kill during the n-th safetensors write, after the library's own temp file
        (`.tmpXXXXXX` beside the target) has been started

A kill at a moment chosen by timing would make the tests slow and flaky; these land
at the same place every run.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm_rename(part: str, nth: int) -> None:
    real = os.replace
    seen = 0

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal seen
        if part in os.path.basename(str(dst)):
            seen += 1
            if seen == nth:
                _kill()
        real(src, dst, *args, **kwargs)

    os.replace = replace  # type: ignore[assignment]


def _arm_safetensors(nth: int) -> None:
    import safetensors.numpy as stn

    real = stn.serialize_file
    seen = 0

    def serialize(tensors: Any, filename: Any, metadata: Any = None) -> None:
        nonlocal seen
        seen += 1
        if seen == nth:  # what the Rust writer leaves when killed mid-write: a partial temp beside the target
            with open(os.path.join(os.path.dirname(str(filename)), ".tmpK1ll9x"), "wb") as f:
                f.write(b"\0" * 4096)
            _kill()
        real(tensors, filename, metadata=metadata)

    stn.serialize_file = serialize


def main() -> None:
    mode, part, nth, sep, *args = sys.argv[1:]
    assert sep == "--", "usage: killer MODE PART N -- ARGS"
    if mode == "rename":
        _arm_rename(part, int(nth))
    elif mode == "safetensors-temp":
        _arm_safetensors(int(nth))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    from workbench.cli import app

    app(args=args, prog_name="workbench")


if __name__ == "__main__":
    main()
