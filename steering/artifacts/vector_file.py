"""Reading an input vector file, whatever its format: `read_vector`, by suffix (`VECTOR_READERS`).

Everything that takes a vector from the user (`workbench steer`, `analyze`, `export`, the app, a sweep's
`file:` method) reads it here: the workbench's own safetensors, a GGUF control vector (ours or repeng's), or
another tool's plain `.npy` / safetensors tensors (`steering.artifacts.foreign_vectors`; never a pickle). Writing formats is `steering.export`'s job; a GGUF control vector is read by its format's module
(`steering.export.gguf_cvec`), imported only when a `.gguf` file is read.

Example:
    >>> read_vector("artifacts/demo/sweep/recommended.safetensors").layers  # doctest: +SKIP
    [10]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from interp.errors import InputError
from steering.artifacts.foreign_vectors import is_foreign, read_foreign_vector
from steering.artifacts.steering_vector import SteeringVector, VectorMismatchError

if TYPE_CHECKING:
    from interp.models.loading import ChatModel
    from steering.artifacts.steerable import Steerable


def _read_gguf(path: Path) -> SteeringVector:
    from steering.export.gguf_cvec import read_gguf_control_vector  # the GGUF format, read and written, lives there

    return read_gguf_control_vector(path)


def _read_safetensors(path: Path) -> SteeringVector:
    """The workbench's own file (plain or exported); another tool's plain tensors when it has no workbench record."""
    return read_foreign_vector(path) if is_foreign(path) else SteeringVector.load(path)


#: how a vector file is read, by suffix: the workbench's own file (plain or exported), another tool's plain
#: tensors, or a GGUF control vector
VECTOR_READERS: dict[str, Callable[[Path], SteeringVector]] = {
    ".safetensors": _read_safetensors,
    ".gguf": _read_gguf,
    ".npy": read_foreign_vector,
}


def read_vector(path: str | Path) -> SteeringVector:
    """A SteeringVector from a workbench `.safetensors` (plain or exported), a `.gguf` control vector, or another
    tool's plain `.npy` / safetensors tensors.

    Args:
        path: the vector file; its suffix picks the reader.

    Raises:
        InputError: another suffix, or no such file.

    Example:
        >>> read_vector("artifacts/demo/sweep/recommended.safetensors")  # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix not in VECTOR_READERS:
        raise InputError("not a vector file", path=path, expected=f"a {' or '.join(VECTOR_READERS)} file")
    if not path.is_file():
        raise InputError("no such vector file" if not path.exists() else "is not a file", path=path)
    return VECTOR_READERS[path.suffix](path)


def read_intervention(path: str | Path) -> Steerable:
    """`read_vector`, or a workbench low-rank edit or head ablation (`.safetensors`, plain or exported, told by its
    format tag).

    Example:
        >>> read_intervention("artifacts/x/sweep/vectors/lowrank-correct-2.safetensors").layers  # doctest: +SKIP
        [12]
    """
    from steering.artifacts.steerable import is_intervention_file, load_steerable

    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file() and is_intervention_file(path):
        return load_steerable(path)
    return read_vector(path)


def check_vector_fits(vector: Steerable, path: str | Path, model: ChatModel, force: bool) -> None:
    """`vector.check_compatible` for a vector read from `path`: the refusal names the file.

    Args:
        vector: the vector read from `path`.
        path: where it was read from (named in the error).
        model: the model it is about to be used with.
        force: accept a model whose weights hash differs from the vector's.

    Raises:
        InputError: the vector does not fit the model.

    Example:
        >>> check_vector_fits(read_vector("v.gguf"), "v.gguf", model, force=False)  # doctest: +SKIP
    """
    try:
        vector.check_compatible(model.d_model, model.weights_hash, force=force)
    except VectorMismatchError as e:
        raise InputError(str(e), path=path) from None
