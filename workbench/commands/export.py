"""`workbench export` and `workbench verify-export`: deploy a steering vector, then prove the export works."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from interp.errors import InputError, json_type, parse_json, read_text
from interp.outputs import check_out_file, prepare_dir
from interp.sites import parse_layers
from interp.store.atomic import remove_stale_temps
from workbench.cli import ModelOpt, app, finite

FORMAT_HELP = "safetensors (workbench native) | gguf (llama.cpp control vector) | hf-folded (HF model folder)"


def _measured(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    data = parse_json(read_text(path, "--measured JSON file"), path)
    if not isinstance(data, dict):
        raise InputError(f"--measured holds JSON {json_type(data)}", path=path, expected="a JSON object")
    try:
        json.dumps(data, allow_nan=False)
    except ValueError:
        raise InputError("--measured holds NaN or Infinity", path=path, expected="finite numbers") from None
    return data


def _warn(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)


@app.command("export")
def export(
    format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)],
    out: Annotated[Path, typer.Option("--out", help="output file (safetensors, gguf) or folder (hf-folded)")],
    vector: Annotated[Path | None, typer.Option("--vector", help="steering vector (.safetensors, or a .gguf "
                                                "control vector), or a low-rank edit (.safetensors)")] = None,
    sweep: Annotated[Path | None, typer.Option("--sweep", help="a sweep folder (artifacts/<run>/sweep): export its "
                                               "recommended operating point (vector, layer, strength, positions, "
                                               "measured gain and loss)")] = None,
    method: Annotated[str | None, typer.Option(
        "--method", help="with --sweep: the best cell of this method within the sweep's loss budget (e.g. "
        "learned:correct@all, measured where llama.cpp adds: every position)")] = None,
    strength: Annotated[float | None, typer.Option(
        callback=finite, help="add: multiplier of the raw vector; ablate: of the removed part (default 1)")] = None,
    layers: Annotated[str | None, typer.Option(help="layers to export: '5-20' or '5,7,9-12' (default: all)")] = None,
    mode: Annotated[str, typer.Option(help="add | ablate (ablate: safetensors, hf-folded)")] = "add",
    model: Annotated[str | None, typer.Option("--model", help="the vector's model (required for hf-folded)")] = None,
    measured: Annotated[Path | None, typer.Option(help="JSON of the gain/loss measured at this strength")] = None,
    force: Annotated[bool, typer.Option(help="use a model whose weights hash differs from the vector's")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an existing output")] = False,
) -> None:
    """Export a steering vector as safetensors, a llama.cpp control vector, or a folded HF checkpoint (a low-rank
    edit: safetensors only)."""
    from interp.models.loading import load_model
    from steering.artifacts.vector_file import check_vector_fits, read_intervention
    from steering.export.formats import check_holds, check_request, export_vector

    if (vector is None) == (sweep is None):
        raise InputError("give one of --vector FILE or --sweep artifacts/<run>/sweep", field="--vector/--sweep")
    record: dict[str, Any] | None
    if sweep is not None:
        from steering.sweep.report import operating_point_vector

        source, point_strength, record = operating_point_vector(sweep, method)
        strength = point_strength if strength is None else strength
        origin = sweep
        if measured is not None:
            record = _measured(measured)
    else:
        assert vector is not None  # exactly one of the two, checked above
        if method is not None:
            raise InputError("--method picks a cell of a sweep: use it with --sweep", field="--method")
        source, record, origin = read_intervention(vector), _measured(measured), vector
    if layers is not None:
        source = source.select(parse_layers(layers))
    if format == "hf-folded":
        if out.exists() and not out.is_dir():
            raise InputError("--out: is a file, expected a folder for hf-folded", path=out)
        prepare_dir(out.parent, "--out")
    else:
        check_out_file(out, "--out")
    check_holds(check_request(format, mode, model is not None, out, strength, overwrite), source, mode)
    for stale in remove_stale_temps(out):
        typer.echo(f"removed {stale.name}, a temp file left by an interrupted export")
    chat_model = load_model(model) if model else None
    if chat_model is not None:
        check_vector_fits(source, origin, chat_model, force)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        path = export_vector(format, source, out, mode=mode, strength=strength, model=chat_model,
                             measured=record, force=force, overwrite=overwrite)
    _warn(caught)
    if any("positions" in str(w.message) for w in caught):
        typer.echo("to re-measure at every position, sweep it again with positions='all' and export that vector")
    typer.echo(f"{format} export ({mode}, layers {source.layers[0]}..{source.layers[-1]}): {path}")


@app.command("verify-export")
def verify_export(
    path: Annotated[Path, typer.Argument(help="the export: .safetensors, .gguf, or a folded model folder")],
    model: ModelOpt,
    vector: Annotated[Path | None, typer.Option("--vector", help="the source vector (needed for hf-folded)")] = None,
    strength: Annotated[float | None, typer.Option(callback=finite,
                                                   help="reference strength (default: the export's)")] = None,
    force: Annotated[bool, typer.Option(help="verify against a model whose hash differs from the export's")] = False,
    report: Annotated[Path | None, typer.Option(help="also write the report as JSON here")] = None,
    positions: Annotated[str | None, typer.Option(
        help="gguf: where llama.cpp steers: all (its --control-vector) | generated (the workbench's llama.cpp "
        "engine, from the last prompt token on); default: the positions the export was measured at")] = None,
) -> None:
    """Load an export the way its runtime does and compare it with the hook-steered model."""
    from interp.models.loading import load_model
    from interp.store.atomic import atomic_write_json
    from steering.artifacts.vector_file import read_vector
    from steering.export.formats import verify_export as run_verify

    if not path.exists():
        raise InputError("no such file or folder", path=path, expected="a .safetensors or .gguf export, or a folded model folder")
    source = read_vector(vector) if vector is not None else None
    if report is not None:
        check_out_file(report, "--report")
    result = run_verify(path, load_model(model), source=source, strength=strength, force=force, positions=positions)
    if report is not None:
        atomic_write_json(report, result.to_dict())
    for line in result.lines():
        typer.echo(line)
    if not result.passed:
        raise typer.Exit(code=1)
