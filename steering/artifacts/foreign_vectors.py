"""Vectors other tools wrote: plain `.npy` arrays and safetensors files without the workbench's header.

Layer convention (the one every reader here follows, like repeng's `directions` and llama.cpp's
`direction.L`): the vector at key L is added to the OUTPUT of decoder layer L (`blocks.L.hook_resid_post`).

- `.npy`: `[d_model]` (one vector: its layer comes from the caller, e.g. `file:v.npy#12`) or
  `[n_layers, d_model]` (row L = layer L; all-zero rows are left out). Never a pickle (`allow_pickle=False`).
- `.safetensors` without a `workbench` record: tensors whose names end in a layer number (`layer.12`,
  `direction.12`, `model.layers.12`, `12`), or one `[d_model]` / `[n_layers, d_model]` tensor, read as `.npy`.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "v.npy"); np.save(path, np.ones(4, np.float32))
    >>> read_foreign_vector(path, layer=2).layers
    [2]
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file

from interp.errors import InputError
from interp.store.tagged_file import read_tagged
from steering.artifacts.steering_vector import SteeringVector

_TRAILING_LAYER = re.compile(r"(?:^|[._])(\d+)$")


def _from_array(array: np.ndarray, path: Path, layer: int | None, what: str) -> dict[int, np.ndarray]:
    if array.ndim == 1:
        if layer is None:
            raise InputError(f"{what} holds one [{array.shape[0]}] vector and no layer", path=path,
                             expected="a layer with the method, e.g. file:PATH#12")
        return {int(layer): array}
    if array.ndim == 2:
        rows = {i: row for i, row in enumerate(array) if np.any(row != 0)}
        if layer is not None:
            if layer not in rows:
                raise InputError(f"{what} has no non-zero row {layer}", path=path,
                                 expected=f"one of rows {sorted(rows)}")
            return {int(layer): rows[layer]}
        return rows
    raise InputError(f"{what} has shape {list(array.shape)}", path=path,
                     expected="[d_model] or [n_layers, d_model]")


def _finite(directions: dict[int, np.ndarray], path: Path) -> dict[int, np.ndarray]:
    if not directions:
        raise InputError("no direction in the file", path=path, expected="at least one non-zero vector")
    out = {}
    for layer, v in directions.items():
        if not np.issubdtype(v.dtype, np.floating):
            raise InputError(f"layer {layer} is {v.dtype}", path=path, expected="floating-point values")
        if not np.isfinite(v).all():
            raise InputError(f"layer {layer} holds NaN or inf", path=path, expected="finite values")
        out[layer] = v.astype(np.float32)
    widths = {v.shape[0] for v in out.values()}
    if len(widths) != 1:
        raise InputError(f"the layers have different widths {sorted(widths)}", path=path, expected="one d_model")
    return out


def _read_npy(path: Path, layer: int | None) -> dict[int, np.ndarray]:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as e:  # a pickled object array, or not an .npy
        raise InputError(f"not a plain numpy array ({e})", path=path, expected="an .npy of floats (no pickle)") from None
    return _from_array(np.asarray(array), path, layer, "the array")


def _read_plain_safetensors(path: Path, layer: int | None) -> dict[int, np.ndarray]:
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise InputError(f"not a readable safetensors file ({e})", path=path) from None
    if len(tensors) == 1:
        (name, array), = tensors.items()
        match = _TRAILING_LAYER.search(name)
        if array.ndim == 2 or match is None or layer is not None:
            return _from_array(array, path, layer, f"tensor {name!r}")
    directions: dict[int, np.ndarray] = {}
    for name, array in tensors.items():
        match = _TRAILING_LAYER.search(name)
        if match is None or array.ndim != 1:
            raise InputError("a tensor whose name does not end in a layer number", path=path, field=name,
                             expected="[d_model] tensors named like layer.12, direction.12 or model.layers.12")
        directions[int(match.group(1))] = array
    if layer is not None:
        if layer not in directions:
            raise InputError(f"no tensor for layer {layer}", path=path, expected=f"one of {sorted(directions)}")
        directions = {layer: directions[layer]}
    return directions


def is_foreign(path: str | Path) -> bool:
    """Whether `path` is read by this module: an `.npy`, or a safetensors file without a workbench record."""
    path = Path(path)
    if path.suffix == ".npy":
        return True
    return path.suffix == ".safetensors" and "workbench" not in read_tagged(path, "vector", load_tensors=False)[0]


def read_foreign_vector(path: str | Path, layer: int | None = None) -> SteeringVector:
    """A SteeringVector (method "file:<name>", no model hash) from a plain `.npy` or header-less safetensors.

    Args:
        path: the file.
        layer: the layer of a single `[d_model]` vector (or the one row/tensor to take).

    Raises:
        InputError: a pickle, a wrong shape or dtype, non-finite values, tensors without layer numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such vector file" if not path.exists() else "is not a file", path=path)
    raw = _read_npy(path, layer) if path.suffix == ".npy" else _read_plain_safetensors(path, layer)
    directions = _finite(raw, path)
    d_model = next(iter(directions.values())).shape[0]
    return SteeringVector(directions, method=f"file:{path.name}", d_model=d_model,
                          meta={"source": "foreign", "file": str(path)})
