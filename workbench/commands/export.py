"""`workbench export` and `workbench verify-export`: deploy a steering vector, then prove the export works."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from interp.models import ModelLoadError
from steering.vector import SteeringVector
from workbench.cli import ModelOpt, app, fail

FORMAT_HELP = "safetensors (workbench native) | gguf (llama.cpp control vector) | hf-folded (HF model folder)"


def parse_layers(spec: str) -> list[int]:
    """'5-20' or '5,7,9-12' -> sorted layer list.

    Example:
        >>> parse_layers("1,3-5")
        [1, 3, 4, 5]
    """
    layers: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ValueError(f"--layers {spec!r}: expected layers like '5-20' or '5,7,9-12'") from None
        if last < first:
            raise ValueError(f"--layers {spec!r}: range {part} runs backwards")
        layers.update(range(first, last + 1))
    if not layers:
        raise ValueError(f"--layers {spec!r}: no layers")
    return sorted(layers)


def _readers() -> dict[str, Callable[[Path], SteeringVector]]:
    from steering.export.gguf_cvec import read_gguf_control_vector

    return {".safetensors": SteeringVector.load, ".gguf": read_gguf_control_vector}


def read_vector(path: Path) -> SteeringVector:
    """A SteeringVector from a workbench `.safetensors` (plain or exported) or a `.gguf` control vector."""
    readers = _readers()
    if path.suffix not in readers:
        raise ValueError(f"{path}: a vector is a {' or '.join(readers)} file")
    if not path.is_file():
        raise ValueError(f"{path}: no such vector file")
    return readers[path.suffix](path)


def _measured(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"--measured {path}: not a readable JSON file ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--measured {path}: expected a JSON object")
    return data


def _warn(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)


@app.command("export")
def export(
    format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)],
    out: Annotated[Path, typer.Option("--out", help="output file (safetensors, gguf) or folder (hf-folded)")],
    vector: Annotated[Path | None, typer.Option("--vector", help="steering vector (.safetensors, or a .gguf "
                                                "control vector)")] = None,
    sweep: Annotated[Path | None, typer.Option("--sweep", help="a sweep folder (artifacts/<run>/sweep): export its "
                                               "recommended operating point (vector, layer, strength, positions, "
                                               "measured gain and loss)")] = None,
    strength: Annotated[float | None, typer.Option(
        help="add: multiplier of the raw vector; ablate: of the removed part (default 1)")] = None,
    layers: Annotated[str | None, typer.Option(help="layers to export: '5-20' or '5,7,9-12' (default: all)")] = None,
    mode: Annotated[str, typer.Option(help="add | ablate (ablate: safetensors, hf-folded)")] = "add",
    model: Annotated[str | None, typer.Option("--model", help="the vector's model (required for hf-folded)")] = None,
    measured: Annotated[Path | None, typer.Option(help="JSON of the gain/loss measured at this strength")] = None,
    force: Annotated[bool, typer.Option(help="use a model whose weights hash differs from the vector's")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an existing output")] = False,
) -> None:
    """Export a steering vector as safetensors, a llama.cpp control vector, or a folded HF checkpoint."""
    from interp.models import load_model
    from steering.export.formats import export_vector

    try:
        if (vector is None) == (sweep is None):
            raise ValueError("give one of --vector FILE or --sweep artifacts/<run>/sweep")
        if sweep is not None:
            from steering.report import operating_point_vector

            source, point_strength, recorded = operating_point_vector(sweep)
            strength = point_strength if strength is None else strength
        else:
            assert vector is not None
            source, recorded = read_vector(vector), None
        if layers is not None:
            source = source.select(parse_layers(layers))
        chat_model = load_model(model) if model else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            path = export_vector(format, source, out, mode=mode, strength=strength, model=chat_model,
                                 measured=_measured(measured) if measured is not None else recorded, force=force,
                                 overwrite=overwrite)
    except (ModelLoadError, ValueError, OSError) as e:
        fail(str(e))
    _warn(caught)
    if any("positions" in str(w.message) for w in caught):
        typer.echo("to re-measure at every position, sweep it again with positions='all' and export that vector")
    typer.echo(f"{format} export ({mode}, layers {source.layers[0]}..{source.layers[-1]}): {path}")


@app.command("verify-export")
def verify_export(
    path: Annotated[Path, typer.Argument(help="the export: .safetensors, .gguf, or a folded model folder")],
    model: ModelOpt,
    vector: Annotated[Path | None, typer.Option("--vector", help="the source vector (needed for hf-folded)")] = None,
    strength: Annotated[float | None, typer.Option(help="reference strength (default: the export's)")] = None,
    force: Annotated[bool, typer.Option(help="verify against a model whose hash differs from the export's")] = False,
    report: Annotated[Path | None, typer.Option(help="also write the report as JSON here")] = None,
) -> None:
    """Load an export the way its runtime does and compare it with the hook-steered model."""
    from interp.atomic import atomic_write_json
    from interp.models import load_model
    from steering.export.formats import verify_export as run_verify

    try:
        source = read_vector(vector) if vector is not None else None
        result = run_verify(path, load_model(model), source=source, strength=strength, force=force)
        if report is not None:
            atomic_write_json(report, result.to_dict())
    except (ModelLoadError, ValueError, OSError) as e:
        fail(str(e))
    for line in result.lines():
        typer.echo(line)
    if not result.passed:
        raise typer.Exit(code=1)
