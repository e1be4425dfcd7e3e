"""Cached loaders: every file the app reads goes through here, and every read calls the packages.

Runs, eval, probes and analyses; the steering side (sweep, vectors, exports, the
live model) is in `app.steering_data`. Public functions take a run folder
(`Path`) and return the artifact, or None
when the run lacks it; they key the cache on the file's modification time, so
a batch job that rewrites a file is seen on the next rerun. Arrays and tables
are cached with `st.cache_data`, the model and directions (objects holding
arrays that the app never mutates) with `st.cache_resource`.

Example:
    >>> folder = run_folder("demo")  # doctest: +SKIP
    >>> frame = probe_frame(folder)  # ProbeReport.to_frame(), or None  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import pandas as pd
import streamlit as st

from interp.store.runs import artifacts_root

if TYPE_CHECKING:
    from probes.direction import Direction

P = ParamSpec("P")
R = TypeVar("R")

#: the parts of a run, in pipeline order, and the folder each lives in
PARTS = ("activations", "eval", "probes", "sweep", "analysis", "exports")


class PartError(RuntimeError):
    """A file of a run that exists but cannot be read; the message names it and the reason.

    The public loaders (`@shown`) show it as a warning instead of a traceback.
    """


def shown(func: Callable[P, R]) -> Callable[P, R]:
    """A public loader: a PartError becomes a warning on the page and stops it (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except PartError as e:
            st.warning(str(e))
            st.stop()
            raise  # unreachable: st.stop() raises

    return wrapper


def unreadable(path: str | Path, error: BaseException) -> PartError:
    return PartError(f"Cannot read `{path}`: {type(error).__name__}: {error}. "
                     "The job that writes it may have been interrupted; run it again.")


def root() -> Path:
    """The artifacts root: `$WORKBENCH_ARTIFACTS`, else `./artifacts`."""
    return artifacts_root()


def run_folder(run: str) -> Path:
    return root() / run


def stamp(path: Path) -> int:
    """Modification time (ns) of a file, or of the newest file directly in a folder; 0 if absent."""
    if not path.exists():
        return 0
    if path.is_dir():
        return max((p.stat().st_mtime_ns for p in path.iterdir()), default=path.stat().st_mtime_ns)
    return path.stat().st_mtime_ns


# -- runs ------------------------------------------------------------------------------------------


def parts_of(folder: Path) -> dict[str, bool]:
    """Which parts a run folder holds (a part counts when its folder has files)."""
    return {part: (folder / part).is_dir() and any((folder / part).iterdir()) for part in PARTS}


def run_names() -> list[str]:
    """Run folders under the root (a folder with a run.json or any part), sorted by name."""
    base = root()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name != "screenshots"
                  and ((p / "run.json").is_file() or any(parts_of(p).values())))


def run_record(folder: Path) -> dict[str, Any]:
    """`run.json` (steps -> config, model, versions, git commit, finished); {} when absent, and
    {"error": message} when unreadable (so one broken run never hides the others)."""
    try:
        return read_json(str(folder / "run.json"), stamp(folder / "run.json")) or {}
    except PartError as e:
        return {"error": str(e)}


@st.cache_data(show_spinner=False)
def read_json(path: str, mtime: int) -> dict[str, Any] | None:
    """A JSON object file (None when `mtime` is 0: absent); PartError when unreadable. Cached per mtime."""
    if not mtime:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise unreadable(path, e) from None
    if not isinstance(data, dict):
        raise unreadable(path, ValueError("expected a JSON object"))
    return data


def _data_of(steps: dict[str, Any]) -> str:
    seen: list[str] = []
    for step in steps.values():
        config = step.get("config", {})
        for key in ("tasks", "data"):
            value = config.get(key)
            if isinstance(value, list | tuple):
                value = ",".join(str(v) for v in value)
            for item in str(value).split(",") if value else []:
                if item and item not in seen:
                    seen.append(item)
    return ", ".join(seen)


@shown
def runs_table() -> pd.DataFrame:
    """One row per run: model, data, date of the last step, and a column per part (True/False)."""
    rows = []
    for name in run_names():
        folder = run_folder(name)
        record = run_record(folder)
        steps = record.get("steps", {})
        model = record.get("model", {})
        finished = max((s.get("finished", "") for s in steps.values()), default="")
        rows.append({"run": name, "model": model.get("spec", ""), "layers": model.get("n_layers"),
                     "data": _data_of(steps), "finished": finished.replace("T", " "),
                     "steps": ", ".join(steps), **parts_of(folder)})
    columns = ["run", "model", "layers", "data", "finished", "steps", *PARTS]
    return pd.DataFrame(rows, columns=columns)


def model_spec(folder: Path) -> str | None:
    """The model a run was made with (run.json's `model.spec`), or None."""
    spec = run_record(folder).get("model", {}).get("spec")
    return str(spec) if spec else None


# -- eval ------------------------------------------------------------------------------------------


@shown
def eval_result(folder: Path) -> dict[str, Any] | None:
    """eval/eval.json: config, model, profile (per task: conditions, effects, known pairs)."""
    path = folder / "eval" / "eval.json"
    return read_json(str(path), stamp(path))


@shown
def profile_frame(folder: Path) -> pd.DataFrame | None:
    """The profile flattened by `interp.scoring.profile.profile_table`: task, what, metric, estimate, low, high, n."""
    result = eval_result(folder)
    if result is None or "profile" not in result:
        return None
    return _profile_frame(json.dumps(result["profile"], sort_keys=True))


@st.cache_data(show_spinner=False)
def _profile_frame(profile_json: str) -> pd.DataFrame:
    from interp.scoring.profile import profile_table

    return profile_table(json.loads(profile_json))


@shown
def eval_scores(folder: Path) -> pd.DataFrame | None:
    """eval/scores.parquet: one row per example (task, condition, pred, correct, chose_pushed, margin, rating)."""
    return table(folder / "eval" / "scores.parquet")


# -- tables ----------------------------------------------------------------------------------------


@shown
def table(path: Path) -> pd.DataFrame | None:
    """A Parquet table, or None when absent."""
    return _parquet(str(path), stamp(path)) if path.is_file() else None


@st.cache_data(show_spinner=False)
def _parquet(path: str, mtime: int) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise unreadable(path, e) from None


# -- probes ----------------------------------------------------------------------------------------


@shown
def probe_frame(folder: Path) -> pd.DataFrame | None:
    """probes/report.json as `ProbeReport.to_frame()` (one row per label source, site, position, method)."""
    path = folder / "probes" / "report.json"
    return _probe_report(str(path), stamp(path))[0] if path.is_file() else None


@shown
def best_layers(folder: Path) -> pd.DataFrame | None:
    """`ProbeReport.best_layers` as a table: the best layer per (label source, position, method)."""
    path = folder / "probes" / "report.json"
    return _probe_report(str(path), stamp(path))[1] if path.is_file() else None


@st.cache_data(show_spinner=False)
def _probe_report(path: str, mtime: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from probes.report import ProbeReport

    try:
        report = ProbeReport.load(path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise unreadable(path, e) from None
    return report.to_frame(), pd.DataFrame(list(report.best_layers))


@shown
def probe_table(folder: Path, name: str) -> pd.DataFrame | None:
    """probes/<name>.parquet: cosines_methods, cosines_layers, projections, generalisation(_contrast)."""
    return table(folder / "probes" / f"{name}.parquet")


@shown
def directions(folder: Path) -> dict[str, Direction]:
    """probes/directions.safetensors (Direction.key -> Direction), or {} when absent."""
    path = folder / "probes" / "directions.safetensors"
    return _directions(str(path), stamp(path)) if path.is_file() else {}


@st.cache_resource(show_spinner=False)
def _directions(path: str, mtime: int) -> dict[str, Direction]:
    from probes.direction import load_directions

    try:
        return load_directions(path)
    except Exception as e:  # safetensors' own error type for a bad header, ValueError for bad metadata
        raise unreadable(path, e) from None


@shown
def stored_projection_key(folder: Path) -> str | None:
    """The direction probes/projections.parquet was computed on."""
    frame = probe_table(folder, "projections")
    if frame is None or "direction" not in frame or frame.empty:
        return None
    return str(frame["direction"].iloc[0])


@shown
def projections(folder: Path, key: str) -> pd.DataFrame | None:
    """Projection of every cached example on direction `key`, by `task:condition`.

    The probe job's own table when it was made on `key`; otherwise computed from
    the run's ActivationStore with `probes.geometry.projections_by_condition`
    (None when the run has no activations at the direction's site and position).
    """
    if key == stored_projection_key(folder):
        return probe_table(folder, "projections")
    store_dir = folder / "activations"
    if not (store_dir / "manifest.json").is_file():
        return None
    return _projections(str(folder), key, stamp(folder / "probes" / "directions.safetensors"),
                        stamp(store_dir / "manifest.json"))


@st.cache_data(show_spinner="Projecting the cached activations ...")
def _projections(folder: str, key: str, dir_stamp: int, store_stamp: int) -> pd.DataFrame | None:
    from interp.store.activations import ActivationStore
    from probes.geometry import store_projections

    return store_projections(directions(Path(folder))[key], ActivationStore(Path(folder) / "activations"), key)


# -- analysis --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisPart:
    """One analysis (dla, patching, heads) of a run: its summary, tables and static figures."""

    name: str
    summary: dict[str, Any]
    tables: dict[str, Path]
    figures: dict[str, Path]


@shown
def analyses(folder: Path) -> list[AnalysisPart]:
    """The analyses `workbench analyze` wrote to <run>/analysis (read from each `<name>_summary.json`)."""
    from interp.analysis.report import ANALYSES

    base = folder / "analysis"
    out = []
    for name in ANALYSES:
        path = base / f"{name}_summary.json"
        summary = read_json(str(path), stamp(path))
        if summary is None:
            continue
        files = [base / f for f in summary.get("files", [])]
        out.append(AnalysisPart(
            name=name, summary=summary,
            tables={p.stem: p for p in files if p.suffix == ".parquet" and p.is_file()},
            figures={p.stem: p for p in files if p.suffix == ".png" and p.is_file()},
        ))
    return out
