"""The export formats, as a registry: what each writes, which modes it takes, how it is verified.

| format      | file                              | modes       | needs the model | strength        |
| ----------- | --------------------------------- | ----------- | --------------- | --------------- |
| safetensors | `.safetensors` (workbench native) | add, ablate | no              | metadata        |
| gguf        | `.gguf` llama.cpp control vector  | add         | no (checks)     | folded in       |
| hf-folded   | HF model folder                   | add, ablate | yes             | folded in       |

A low-rank edit (`steering.artifacts.lowrank_edit`) exports natively only (mode add): GGUF and folded checkpoints add one
constant vector per layer, and the edit depends on the residual; they refuse it in one line saying so.

Example:
    >>> export_vector("gguf", vector, "out/v.gguf", strength=4.0)  # doctest: +SKIP
    >>> verify_export("out/v.gguf", model, source=vector).passed  # doctest: +SKIP
    True
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp.models.loading import ChatModel
from interp.models.memory import recorded_config
from steering.artifacts.steerable import Steerable
from steering.artifacts.steering_vector import SteeringVector, VectorMismatchError
from steering.export.folded import EXPORT_FILE, fold_checkpoint
from steering.export.gguf_cvec import export_gguf
from steering.export.info import ExportError, check_layers_exist, check_mode
from steering.export.native import export_native
from steering.export.verify import POSITIONED, VERIFIERS, VerifyReport

GATE_WARNING = (
    "this vector was measured behind a probe gate (steering only prompts with user pressure; gates: {files}), but "
    "{runtime} applies it to every prompt: its cost on ordinary prompts will be the always-on curve's, not the "
    "gated one's. Keep the gate with `workbench steer --gate` or plain transformers + steering.steer(gate=...)"
)


@dataclass(frozen=True)
class ExportRequest:
    """One export: what to write, where, and for which model."""

    vector: Steerable
    out: Path
    mode: str
    strength: float | None
    model: ChatModel | None
    measured: dict[str, Any] | None
    overwrite: bool


def _native(r: ExportRequest) -> Path:
    return export_native(r.vector, r.out, r.mode, r.strength, r.measured)


def _constant(r: ExportRequest) -> SteeringVector:
    """The request's vector, for a format that holds only constant vectors (checked by `export_vector`)."""
    if not isinstance(r.vector, SteeringVector):
        raise ExportError(f"{r.vector.method}: {r.vector.why_not_a_vector}")
    return r.vector


def _gguf(r: ExportRequest) -> Path:
    if r.strength is None:
        raise ExportError("a GGUF control vector folds the strength in: pass --strength S")
    return export_gguf(_constant(r), r.out, r.strength, model_hint=r.model.arch if r.model else None,
                       n_layers=r.model.n_layers if r.model else None, measured=r.measured)


def _folded(r: ExportRequest) -> Path:
    assert r.model is not None
    return fold_checkpoint(r.model, _constant(r), r.out, r.mode, r.strength, r.measured, r.overwrite)


def _is_folder(path: Path) -> bool:
    return (path / EXPORT_FILE).is_file()


@dataclass(frozen=True)
class Format:
    """One export format.

    Args:
        name: the CLI name.
        write: writes the export, returns its path.
        modes: modes the format can express.
        needs_model: whether writing needs the model itself (not just its hash).
        is_dir: whether the export is a folder.
        detect: recognises an export of this format on disk.
        suffix: the file suffix an export of this format must have (readers and `detect` go by it); None for
            a folder.
        holds: what its runtime applies, when it can hold only constant vectors ("": any workbench artifact).
    """

    name: str
    write: Callable[[ExportRequest], Path]
    modes: tuple[str, ...]
    needs_model: bool
    is_dir: bool
    detect: Callable[[Path], bool]
    suffix: str | None = None
    holds: str = ""


FORMATS: dict[str, Format] = {
    "safetensors": Format("safetensors", _native, ("add", "ablate"), False, False,
                          lambda p: p.suffix == ".safetensors", ".safetensors"),
    "gguf": Format("gguf", _gguf, ("add",), False, False, lambda p: p.suffix == ".gguf", ".gguf",
                   "llama.cpp adds one constant control vector per layer"),
    "hf-folded": Format("hf-folded", _folded, ("add", "ablate"), True, True, _is_folder, None,
                        "a folded checkpoint adds one constant bias per layer (or projects out one direction)"),
}


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise ExportError(f"unknown format {name!r}: choose one of {', '.join(FORMATS)}")
    return FORMATS[name]


def check_request(format: str, mode: str, has_model: bool, out: str | Path, strength: float | None,
                  overwrite: bool) -> Format:
    """Everything about an export that can be refused before a model is loaded; the chosen Format.

    Raises:
        ExportError: unknown format or mode, no model for hf-folded, a non-finite strength, an existing output,
            an output whose suffix is not the format's (a GGUF named `.safetensors` would be read as the wrong
            format).
    """
    fmt = get_format(format)
    check_mode(mode, fmt.name, fmt.modes)
    if fmt.needs_model and not has_model:
        raise ExportError(f"format {fmt.name} writes a copy of the model: pass --model")
    if strength is not None and not math.isfinite(strength):
        raise ExportError(f"strength {strength} is not a finite number")
    if Path(out).exists() and not overwrite:
        raise ExportError(f"{out} exists; pass --overwrite to replace it")
    if fmt.suffix is not None and Path(out).suffix != fmt.suffix:
        raise ExportError(f"--out {Path(out).name}: a {fmt.name} export is a {fmt.suffix} file; "
                          f"name it {Path(out).stem}{fmt.suffix}")
    return fmt


def export_vector(
    format: str, vector: Steerable, out: str | Path, mode: str = "add", strength: float | None = None,
    model: ChatModel | None = None, measured: dict[str, Any] | None = None, force: bool = False,
    overwrite: bool = False,
) -> Path:
    """Export `vector` in `format` to `out`.

    Args:
        format: "safetensors", "gguf" or "hf-folded".
        vector: the vector (or low-rank edit: safetensors only), restricted to the layers to export
            (`vector.select(...)`).
        out: output file or folder.
        mode: "add" or "ablate".
        strength: multiplier of the raw vector (add).
        model: the model it is for; required for hf-folded, checked against the vector when given.
        measured: gain/loss measured at this operating point, recorded in the export.
        force: accept a model whose weights hash differs from the vector's.
        overwrite: replace an existing output.

    Raises:
        ExportError: a refused export, with the reason (e.g. a layer the model, given or recorded by hash in
            the vector, does not have; a low-rank edit in a format of constant vectors).
        VectorMismatchError: a vector for another model.

    Example:
        >>> export_vector("hf-folded", vector, "out/steered", strength=4.0, model=model)  # doctest: +SKIP
    """
    fmt = check_request(format, mode, model is not None, out, strength, overwrite)
    check_holds(fmt, vector, mode)
    if strength is not None:
        vector.check_strength(strength)
    if model is not None:
        vector.check_compatible(model.d_model, model.weights_hash, force)
        check_layers_exist(vector, model.n_layers, "the model")
    else:
        recorded = recorded_config(vector.model_hash)
        n_layers = getattr(recorded, "num_hidden_layers", None)
        if isinstance(n_layers, int):
            check_layers_exist(vector, n_layers,
                               f"the model the vector records (weights sha256 {vector.model_hash[:12]}...)")
    out = Path(out)
    if vector.meta.get("gate_files") and fmt.name != "safetensors":
        runtime = "llama.cpp" if fmt.name == "gguf" else "a folded checkpoint"
        warnings.warn(GATE_WARNING.format(files=vector.meta["gate_files"], runtime=runtime), UserWarning, stacklevel=2)
    return fmt.write(ExportRequest(vector, out, mode, strength, model, measured, overwrite))


def check_holds(fmt: Format, vector: Steerable, mode: str = "add") -> None:
    """Refuse, in one line saying why, an artifact the format's runtime cannot apply (a low-rank edit in GGUF or a
    folded checkpoint, or with a mode other than add).

    Raises:
        ExportError: naming the format, the artifact and the reason.
    """
    why = vector.why_not_a_vector
    if not why:
        return
    if fmt.holds:
        raise ExportError(f"format {fmt.name} cannot hold {vector.method}: {fmt.holds}, while {why}; export it with "
                          "--format safetensors and apply it with `workbench steer --vector` (the workbench's hooks)")
    if mode != "add":
        raise ExportError(f"{vector.method} is applied as written (mode add), not with mode {mode}: {why}")


def detect_format(path: str | Path) -> str:
    """The format of an export on disk (by folder record or file suffix).

    Raises:
        ExportError: when no format recognises it.
    """
    path = Path(path)
    if not path.exists():
        raise ExportError(f"{path}: no such file or folder")
    for name, fmt in FORMATS.items():
        if fmt.detect(path):
            return name
    raise ExportError(f"{path}: not a recognised export (.safetensors, .gguf, or a folder with {EXPORT_FILE})")


def verify_export(
    path: str | Path, model: ChatModel, source: SteeringVector | None = None, strength: float | None = None,
    force: bool = False, positions: str | None = None,
) -> VerifyReport:
    """Load an export as its runtime does and compare it with the hook-steered model.

    Args:
        path: the export.
        model: the model it was made for.
        source: the source vector (required for hf-folded; checks the content for gguf/safetensors).
        strength: the strength the reference uses (default: the one the export records).
        force: verify against a model whose hash differs from the export's.
        positions: gguf only: where llama.cpp steers, "all" (its `--control-vector`) or "generated"
            (the workbench's engine); default: the positions the export records.

    Example:
        >>> print("\\n".join(verify_export("out/steered", model, source=vector).lines()))  # doctest: +SKIP
    """
    path = Path(path)
    if source is not None:
        try:
            source.check_compatible(model.d_model, model.weights_hash, force)
        except VectorMismatchError as e:
            raise ExportError(f"--vector: {e}") from None
    format = detect_format(path)
    if positions is not None:
        if format not in POSITIONED:
            raise ExportError(f"--positions applies to {', '.join(POSITIONED)} exports, not {format}")
        return POSITIONED[format](path, model, source, strength, force, positions)
    return VERIFIERS[format](path, model, source, strength, force)
