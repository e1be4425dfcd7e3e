"""Output paths checked (and folders created) before any model work, so a long job never dies at its end.

A folder that cannot be made (a file in the way, no permission, a name too
long) or a file that cannot be written fails here with an `InputError`
naming the path, before a model is loaded.

Example:
    >>> import tempfile
    >>> prepare_dir(Path(tempfile.mkdtemp()) / "run" / "eval", "--run folder").is_dir()
    True
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from interp.errors import InputError


def _name_limit(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def _existing_parent(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path(".")


def _check_names(path: Path, what: str) -> None:
    limit = _name_limit(_existing_parent(path.parent if path.parent != path else path))
    for part in path.parts:
        if len(os.fsencode(part)) > limit:
            raise InputError(f"{what}: a name of {len(os.fsencode(part))} bytes is too long", path=_short(path),
                             expected=f"names of at most {limit} bytes")


def _short(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 120 else text[:60] + "..." + text[-40:]


def _probe_writable(folder: Path, what: str) -> None:
    try:
        fd, name = tempfile.mkstemp(prefix=".write-check.", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise InputError(f"cannot write here ({e.strerror or e}) (for {what})", path=_short(folder)) from None


def prepare_dir(path: str | Path, what: str) -> Path:
    """Create `path` (and its parents) and check a file can be written in it.

    Args:
        path: the output folder.
        what: the option or role, for the message ("--artifacts", "--run folder").

    Raises:
        InputError: a file is in the way, the folder cannot be made or written, or a name is too long.
    """
    path = Path(path)
    _check_names(path, what)
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            raise InputError(f"is a file, expected a folder (for {what})", path=_short(parent))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the folder ({e.strerror or e}) (for {what})", path=_short(path)) from None
    _probe_writable(path, what)
    return path


def check_out_file(path: str | Path, what: str, overwrite: bool = True) -> Path:
    """Check an output file can be written: its folder made and writable, the path not a folder.

    Args:
        path: the output file.
        what: the option, for the message ("--out", "--report").
        overwrite: False refuses an existing file.

    Raises:
        InputError: naming the path and the reason.
    """
    path = Path(path)
    _check_names(path, what)
    if path.is_dir():
        raise InputError(f"{what}: is a folder, expected a file path", path=_short(path))
    if path.exists() and not overwrite:
        raise InputError(f"{what}: already exists; pass --overwrite to replace it", path=_short(path))
    prepare_dir(path.parent, what)
    return path


__all__ = ["check_out_file", "prepare_dir"]
