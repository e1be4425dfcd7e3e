"""GGUF control vectors, as llama.cpp (`--control-vector`) and repeng read them.

The format, as llama.cpp's loader checks it: `general.architecture =
"controlvector"`, `controlvector.model_hint` (the model's arch) and
`controlvector.layer_count`, and one 1-D F32 tensor `direction.L` per layer,
added to the output of decoder block L (`blocks.L.hook_resid_post`, see
`interp.sites.llama_cpp_direction_index`). `direction.0` is rejected and makes
llama.cpp drop the whole file, so a layer-0 vector cannot be exported.
llama.cpp's `--control-vector` adds the vector at every position, prompt
included; the workbench's llama.cpp engine (`steering.llamacpp`) sets it for
the positions it was measured at.

The strength is folded in (direction = strength * raw vector) and recorded,
with the rest of the provenance, under `workbench.*` keys that llama.cpp
ignores.

Example:
    >>> path = export_gguf(vector, "v.gguf", strength=4.0)  # doctest: +SKIP
    >>> check_gguf_control_vector(path, n_layers=30, d_model=576)  # doctest: +SKIP
    []
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter

from interp.errors import InputError, parse_json
from interp.sites import Site, llama_cpp_direction_index
from interp.store.atomic import atomic_path
from steering.artifacts.steering_vector import SteeringVector
from steering.export.info import ExportError, ExportInfo, check_residual_site

ARCH = "controlvector"
KEY_ARCH = "general.architecture"
KEY_HINT = f"{ARCH}.model_hint"
KEY_COUNT = f"{ARCH}.layer_count"
KEY_EXPORT = "workbench.export"
KEY_STRENGTH = "workbench.strength"
_NAME = re.compile(r"^direction\.(-?\d+)$")
POSITIONS_WARNING = (
    "this vector was measured with positions={positions!r}, but llama.cpp's --control-vector adds it at every "
    "position, prompt included, so its effect there will differ (and cost more helpfulness) than measured; "
    "deploy it with the workbench's llama.cpp engine (workbench serve --engine llamacpp), which sets it where it "
    "was measured, or re-measure it with positions='all' for the CLI"
)


def direction_name(layer: int) -> str:
    """The tensor name llama.cpp reads for `blocks.{layer}.hook_resid_post`.

    Raises:
        ExportError: for layer 0, which llama.cpp cannot express.
    """
    try:
        return f"direction.{llama_cpp_direction_index(Site(layer, 'hook_resid_post'))}"
    except ValueError as e:
        raise ExportError(f"{e}; llama.cpp drops the whole file. Export layers >= 1 (--layers 1-N)") from None


def export_gguf(
    vector: SteeringVector, path: str | Path, strength: float, model_hint: str | None = None,
    n_layers: int | None = None, measured: dict[str, Any] | None = None,
) -> Path:
    """Write `strength * vector` as a llama.cpp control vector, atomically.

    Warns (`UserWarning`) when the vector was measured on positions other than
    "all", because llama.cpp steers the prompt too.

    Args:
        vector: raw vector at `hook_resid_post`, layers >= 1.
        path: output `.gguf` file.
        strength: multiplier folded into the tensors (and recorded).
        model_hint: the model's architecture for `controlvector.model_hint`
            (default: the vector's `arch`).
        n_layers: the model's layer count, when known, to refuse layers it lacks.
        measured: gain/loss measured at this operating point, if known.

    Raises:
        ExportError: layer 0, a layer >= n_layers, another site, no model hint.
    """
    check_residual_site(vector, "gguf")
    hint = model_hint or vector.arch
    if not hint:
        raise ExportError("controlvector.model_hint needs the model's architecture: the vector has no arch; pass --model")
    names = {layer: direction_name(layer) for layer in vector.layers}
    if n_layers is not None and max(vector.layers) >= n_layers:
        raise ExportError(f"layer {max(vector.layers)} is outside the model's {n_layers} layers")
    if vector.positions != "all":
        warnings.warn(POSITIONS_WARNING.format(positions=vector.positions), UserWarning, stacklevel=2)
    info = ExportInfo.for_vector(vector, "gguf", "add", strength, measured)
    scaled = vector * strength
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = GGUFWriter(str(tmp), ARCH)
        writer.add_string(KEY_HINT, hint)
        writer.add_uint32(KEY_COUNT, len(names))
        writer.add_float32(KEY_STRENGTH, float(strength))
        writer.add_string(KEY_EXPORT, json.dumps(info.to_dict(), sort_keys=True))
        for layer, name in names.items():
            writer.add_tensor(name, np.ascontiguousarray(scaled.directions[layer], dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return path


def _reader(path: str | Path) -> GGUFReader:
    """A GGUFReader, or an InputError for a missing, truncated or foreign file (gguf raises many types)."""
    if not Path(path).is_file():
        raise InputError("no such GGUF file", path=path)
    try:
        return GGUFReader(str(path))
    except Exception as e:  # gguf raises ValueError, IndexError, struct and numpy errors on bad bytes
        raise InputError(f"not a readable GGUF file ({type(e).__name__}: {' '.join(str(e).split())[:200]})",
                         path=path) from None


def _field(reader: GGUFReader, key: str, path: str | Path | None = None) -> Any:
    field = reader.get_field(key)
    if field is None:
        return None
    try:
        return field.contents()
    except Exception as e:  # a value whose bytes do not decode
        raise InputError(f"cannot be read ({type(e).__name__})", path=path, field=key) from None


def check_gguf_control_vector(path: str | Path, n_layers: int | None = None, d_model: int | None = None) -> list[str]:
    """Every rule llama.cpp's loader applies (and repeng's writer follows); [] when the file is good.

    Args:
        path: the `.gguf` file.
        n_layers: the target model's layer count (checks N < n_layers), if known.
        d_model: the target model's width (checks each tensor's length), if known.

    Example:
        >>> check_gguf_control_vector("v.gguf", n_layers=30, d_model=576)  # doctest: +SKIP
        []
    """
    try:
        reader = _reader(path)
    except InputError as e:
        return [str(e)]
    problems = []
    arch = _field(reader, KEY_ARCH, path)
    if arch != ARCH:
        problems.append(f"{KEY_ARCH} is {arch!r}, expected {ARCH!r}")
    if not _field(reader, KEY_HINT, path):
        problems.append(f"{KEY_HINT} is missing (the model's architecture, e.g. 'llama')")
    count = _field(reader, KEY_COUNT, path)
    if count is None:
        problems.append(f"{KEY_COUNT} is missing")
    elif count != len(reader.tensors):
        problems.append(f"{KEY_COUNT} is {count} but the file has {len(reader.tensors)} tensors")
    if not reader.tensors:
        problems.append("no direction tensors")
    lengths = set()
    for tensor in reader.tensors:
        m = _NAME.match(tensor.name)
        if not m:
            problems.append(f"tensor {tensor.name!r}: name is not direction.<N>")
            continue
        index = int(m.group(1))
        if index < 1:
            problems.append(f"{tensor.name}: layer {index} < 1; llama.cpp rejects it and drops the whole file")
        elif n_layers is not None and index >= n_layers:
            problems.append(f"{tensor.name}: layer {index} outside 1..{n_layers - 1} for a model of {n_layers} layers")
        if tensor.tensor_type != GGMLQuantizationType.F32:
            problems.append(f"{tensor.name}: dtype {tensor.tensor_type.name}, llama.cpp needs F32")
        if len(tensor.shape) != 1:
            problems.append(f"{tensor.name}: shape {tuple(int(s) for s in tensor.shape)} is not 1-D")
        if d_model is not None and tensor.n_elements != d_model:
            problems.append(f"{tensor.name}: length {tensor.n_elements}, expected d_model {d_model}")
        lengths.add(int(tensor.n_elements))
    if d_model is None and len(lengths) > 1:
        problems.append(f"direction tensors differ in length: {sorted(lengths)}")
    return problems


def read_gguf_info(path: str | Path) -> ExportInfo | None:
    """The workbench's export record in a GGUF, or None for a file from elsewhere (repeng)."""
    raw = _field(_reader(path), KEY_EXPORT, path)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InputError(f"is a {type(raw).__name__}", path=path, field=KEY_EXPORT, expected="a JSON string")
    try:
        return ExportInfo.from_dict(parse_json(raw, path, field=KEY_EXPORT))
    except ExportError as e:
        raise InputError(str(e), path=path, field=KEY_EXPORT) from None


def read_gguf_control_vector(path: str | Path) -> SteeringVector:
    """Import a control vector (ours or repeng's) as the vector llama.cpp adds.

    The directions are what the file holds (strength already folded in, so use
    them at strength 1); `meta["strength_folded"]` records the strength.

    Raises:
        ExportError: when the file breaks a rule (the message lists them).

    Example:
        >>> read_gguf_control_vector("v.gguf").layers  # doctest: +SKIP
        [5, 6, 7]
    """
    problems = check_gguf_control_vector(path)
    if problems:
        raise ExportError(f"{path}: not a valid control vector: {'; '.join(problems)}")
    reader = _reader(path)
    try:
        directions = {int(_NAME.match(t.name).group(1)): np.array(t.data, dtype=np.float32)  # type: ignore[union-attr]
                      for t in reader.tensors}
    except Exception as e:  # tensor data cut short
        raise InputError(f"tensor data cannot be read ({type(e).__name__})", path=path) from None
    if not all(np.isfinite(v).all() for v in directions.values()):
        raise InputError("a direction tensor holds NaN or inf", path=path, expected="finite values")
    info = read_gguf_info(path)
    d_model = len(next(iter(directions.values())))
    strength = _field(reader, KEY_STRENGTH, path)
    meta: dict[str, Any] = {"source": "gguf", "strength_folded": strength}
    if info is None:
        return SteeringVector(directions, method="gguf", d_model=d_model, arch=str(_field(reader, KEY_HINT, path)), meta=meta)
    return SteeringVector(
        directions, method=info.method, d_model=d_model, model_hash=info.model_hash, arch=info.arch,
        dataset_hash=info.dataset_hash, resid_norms=info.resid_norms, positions=info.positions,
        meta={**meta, "measured": info.measured},
    )
