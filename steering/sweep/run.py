"""Strength x layer x positions x method sweeps, one Parquet row per cell, resumable.

For each vector (built from the TRAIN side of a pair split, or read from a
file), layer and positions rule, the strengths run K at a time in one batched
pass (`steering.evaluation.evaluate.score_strengths`), then a few greedy generations per
strength measure degeneracy. After every batch of K cells the table is
rewritten atomically, so a killed sweep resumes where it stopped: cells
already in the table (same key and same vector) are skipped. Strength 0 is
the unsteered evaluation itself (steering with 0 is exactly unsteered; a test
checks it), computed once per sweep; every curve gets its strength-0 row
(gain and loss 0 by construction), the anchor of the fits.

Layout of `artifacts/<run>/sweep/`: `cells.parquet` (the table),
`generations.parquet` (sample texts), `sweep.json` (config, seeds, split,
vectors, timing), `vectors/`, `gates/` (the probe gates, and the gates a family
learned with its vectors: `Family.cell_gate`), `activations/` (training stores),
and what `steering.sweep.report` writes (fits, figures, recommended vector).

A method's artifact is a `steering.artifacts.steerable.Steerable` (a vector, or a low-rank
edit); the cells ask it for their row steering, key bytes and norm.

Example:
    >>> result = run_sweep(SweepConfig(methods=("caa",), layers=(10,)), Path("artifacts/x/sweep"), model)  # doctest: +SKIP
    >>> result.table[["method", "layer", "strength", "answer_shift_gain", "kl"]]  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from interp.capture.ray_pool import RayOptions
from interp.errors import InputError, json_type, parse_json, read_text
from interp.models.loading import ChatModel
from interp.store.atomic import atomic_path, atomic_write_json
from interp.store.writer import remove_temp_files
from steering.artifacts.probe_gate import GATE_SUFFIX, ProbeGate
from steering.artifacts.steerable import Steerable
from steering.evaluation.splits import check_disjoint, pairs_hash
from steering.evaluation.testset import TestSet, build_test_set
from steering.methods.families.prompt import PROMPT_KEY
from steering.methods.gates import (
    gate_decisions,
    gate_errors,
    gate_rates,
    gate_summary,
    gate_training_examples,
    train_gates,
)
from steering.methods.registry import (
    BuildRequest,
    Method,
    family,
    load_or_build_method_vector,
    method_file_stem,
    resolve_method,
    train_pairs,
)
from steering.methods.statistics import with_measured_positions
from steering.sweep.cells import CellContext, SweepCell, sweep_cells, vector_hash
from steering.sweep.config import SweepConfig, SweepConfigError, sweep_strengths

KEY = ["method", "layer", "strength", "positions", "mode"]
CELLS, GENERATIONS, SWEEP_JSON = "cells.parquet", "generations.parquet", "sweep.json"


@dataclass(frozen=True, eq=False)
class SweepResult:
    table: pd.DataFrame
    folder: Path
    vectors: dict[str, Steerable]
    ran: int
    skipped: int
    seconds: float
    warnings: tuple[str, ...] = ()


def read_table(folder: Path, name: str = CELLS) -> pd.DataFrame:
    """A sweep table (`cells.parquet`, `generations.parquet`), empty when absent; an InputError when damaged."""
    path = folder / name
    if not path.exists():
        return pd.DataFrame()
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises its own types for a damaged file
        raise InputError(f"not a readable table ({type(e).__name__}); move it away and run the sweep again to "
                         "recompute its cells", path=path) from None


def _read_record(folder: Path) -> dict[str, Any]:
    """`sweep.json`, `{}` when absent; an InputError naming it when damaged."""
    path = folder / SWEEP_JSON
    if not path.exists():
        return {}
    record = parse_json(read_text(path, "sweep record"), path)
    if not isinstance(record, dict):
        raise InputError(f"the sweep record is JSON {json_type(record)}; move it away and run the sweep again",
                         path=path, expected="a JSON object")
    return record


def _write(folder: Path, name: str, table: pd.DataFrame) -> None:
    with atomic_path(folder / name) as tmp:
        table.to_parquet(tmp, index=False)


def _vectors(config: SweepConfig, folder: Path, model: ChatModel, test: TestSet, reuse: Sequence[Path],
             methods: Sequence[Method], gates: dict[int, Path]) -> dict[str, tuple[Steerable, dict[str, Any]]]:
    """Label -> (vector, provenance); built vectors are checked disjoint from the test pairs."""
    out: dict[str, tuple[Steerable, dict[str, Any]]] = {}
    split = config.split
    paths = {m.name: folder / "vectors" / f"{method_file_stem(m.name)}.safetensors" for m in methods}
    request = BuildRequest(model, split, tuple(config.layers), folder / "activations", config.n_train, config.seed,
                           tuple(reuse), config.learn, config.force, gates)
    for fam in dict.fromkeys(family(m.family) for m in methods):  # shared work (e.g. one capture per task)
        mine = [m for m in methods if m.family == fam.name]
        if any(not paths[m.name].is_file() for m in mine):
            request = replace(request, reuse=(*request.reuse, *fam.prepare(mine, request)))
    for method in methods:
        train = train_pairs(method, request)
        check_disjoint(train, test.pair_ids, f"vector {method.name}")
        path = paths[method.name]
        vec = load_or_build_method_vector(path, method, request)
        positions = family(method.family).positions(method, config.positions)
        measured = with_measured_positions(vec, positions)
        if measured.positions != vec.positions or measured.meta != vec.meta:
            vec = measured  # the file says where it was measured, so an export records the right positions
            vec.save(path)
        checked = bool(train) or vec.meta.get("split") == split.to_dict()
        out[method.name] = (vec, {"file": str(path), "train_pairs_hash": pairs_hash(train) if train else
                                  vec.meta.get("train_pairs_hash"), "family": method.family,
                                  "n_train_pairs": len(train), "split_checked": checked,
                                  "layer_groups": [list(g) for g in family(method.family).cell_layers(
                                      method, config.layers)], "positions": list(positions),
                                  "always_gated": family(method.family).always_gated})
    return out


def _gates(config: SweepConfig, folder: Path, model: ChatModel, test: TestSet, reuse: Sequence[Path],
           layers: Sequence[int]) -> tuple[dict[int, tuple[ProbeGate, tuple[bool, ...]]], dict[str, Any]]:
    """Per first steered layer of each curve: its gate (read at `config.gate_layer`, or at that layer), trained on
    the train split in the training wordings (never the test's), its decisions and errors on the test set."""
    train = {ex.pair_id for ex in gate_training_examples(config.split, config.n_train, config.seed)}
    check_disjoint(train, test.pair_ids, "gate")
    reads = {layer: layer if config.gate_layer is None else config.gate_layer for layer in sorted(set(layers))}
    too_late = [(layer, g) for layer, g in reads.items() if g > layer]
    if too_late:
        raise SweepConfigError(f"the gate reads layer {too_late[0][1]}, after the steered layer {too_late[0][0]}")
    paths = {g: folder / "gates" / f"layer{g}.safetensors" for g in sorted(set(reads.values()))}
    gates = {g: ProbeGate.load(p) for g, p in paths.items() if p.is_file()}
    expected = pairs_hash(sorted(train))
    if any(g.meta.get("train_pairs_hash") != expected or g.meta.get("model_hash") != model.weights_hash
           or g.meta.get("wording") != "varied" or g.meta.get("label_source") != config.gate_source
           or g.meta.get("fpr") != config.gate_fpr for g in gates.values()) or len(gates) < len(paths):
        gates = train_gates(model, config.split, sorted(paths), folder / "activations", config.n_train, config.seed,
                            reuse, source=config.gate_source, fpr=config.gate_fpr)
        for g, gate in gates.items():
            gate.save(paths[g])
    tested = {g: _gate_on_test(config, model, test, gate, paths[g]) for g, gate in gates.items()}
    out = {layer: tested[g][0] for layer, g in reads.items()}
    record = {str(layer): {**tested[g][1], "reads_layer": g} for layer, g in reads.items()}
    return out, record


def _gate_on_test(config: SweepConfig, model: ChatModel, test: TestSet, gate: ProbeGate,
                  path: Path) -> tuple[tuple[ProbeGate, tuple[bool, ...]], dict[str, Any]]:
    """A gate's decisions on the test set, and its record (file, training provenance, rates and errors)."""
    on, _ = gate_decisions(model, test.examples, gate, config.batch_size)
    record = {"file": str(path), "train": gate.meta, "test": gate_summary(test.examples, on),
              "test_rates": gate_rates(test.examples, on), "threshold": gate.threshold,
              "test_errors": gate_errors(test.examples, on), "test_wording": config.test.wording}
    return (gate, tuple(bool(x) for x in on)), record


def _own_gates(config: SweepConfig, folder: Path, model: ChatModel, test: TestSet,
               vectors: dict[str, tuple[Steerable, dict[str, Any]]]) -> dict[str, tuple[ProbeGate, tuple[bool, ...]]]:
    """The gates families bring for their own cells (`Family.cell_gate`, e.g. learned with the vector), keyed
    `f"{label}@{first layer}"`: saved under `gates/`, their record (as the probe gates') in the vector's provenance
    under "gates" and their files under "gate_files"."""
    out = {}
    for name, (vec, info) in vectors.items():
        fam = family(info["family"])
        for group in info["layer_groups"]:
            gate = fam.cell_gate(vec, group[0])
            if gate is None:
                continue
            path = folder / "gates" / f"{method_file_stem(name)}-layer{group[0]}.safetensors"
            if not path.is_file() or ProbeGate.load(path).to_record() != gate.to_record():
                gate.save(path)
            out[f"{name}@{group[0]}"], record = _gate_on_test(config, model, test, gate, path)
            info.setdefault("gates", {})[str(group[0])] = record
            info.setdefault("gate_files", {})[str(group[0])] = str(path)
    return out


def _merge(table: pd.DataFrame, rows: list[dict[str, Any]]) -> pd.DataFrame:
    new = pd.DataFrame(rows)
    if table.empty:
        return new
    keys = set(map(tuple, new[KEY].astype(str).to_numpy().tolist()))
    keep = ~table[KEY].astype(str).apply(tuple, axis=1).isin(keys)
    return pd.concat([table[keep], new], ignore_index=True)


def _check_folder(folder: Path, fingerprint: str, overwrite: bool) -> None:
    old = _read_record(folder).get("fingerprint")
    if old is None:
        return
    if old == fingerprint:
        return
    if not overwrite:
        raise SweepConfigError(
            f"{folder} holds a sweep on another model, test set, split or training size; "
            "use another --run or pass --overwrite to discard its cells")
    for name in (CELLS, GENERATIONS):
        (folder / name).unlink(missing_ok=True)


def run_sweep(
    config: SweepConfig,
    folder: Path,
    model: ChatModel,
    reuse: Sequence[Path] = (),
    overwrite: bool = False,
    progress: Callable[[int, str], None] | None = None,
    ray: RayOptions | None = None,
) -> SweepResult:
    """Run (or resume) a sweep into `folder`.

    Args:
        config: the sweep.
        folder: artifacts/<run>/sweep.
        model: the loaded model (its hash is checked against the folder's); builds the vectors, and
            evaluates the cells unless `ray` is given.
        reuse: activation stores to reuse for training vectors.
        overwrite: discard cells made with another test set/split/model.
        progress: called with (cells done, message) after each batch.
        ray: spread the cells over Ray actors (`steering.sweep.on_ray`), each loading `config.model` once;
            the rows equal the in-process ones (every column but `seconds`).
    """
    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    test = build_test_set(replace(config.test, seed=config.seed), config.split)
    fingerprint = config.fingerprint(model.weights_hash, test)
    _check_folder(folder, fingerprint, overwrite)
    for sub in (folder, folder / "vectors", folder / "gates"):  # temp files of a killed run (ours and safetensors')
        if sub.is_dir():
            remove_temp_files(sub)
    table = read_table(folder)  # a damaged table fails before any vector is built
    gens_table = read_table(folder, GENERATIONS)
    methods = [resolve_method(m) for m in config.method_specs]
    gate_layers = sorted({group[0] for m in methods for group in family(m.family).cell_layers(m, config.layers)})
    needs_gate = config.gate != "off" or any(family(m.family).always_gated for m in methods)
    layer_gates, gate_record = (_gates(config, folder, model, test, reuse, gate_layers) if needs_gate else ({}, {}))
    gate_files = {int(layer): Path(info["file"]) for layer, info in gate_record.items()}
    vectors = _vectors(config, folder, model, test, reuse, methods, gate_files)
    own_gates = _own_gates(config, folder, model, test, vectors)
    for _, info in vectors.values():  # an always-gated vector names the gates of its cells (for its export)
        if info["always_gated"]:
            info.setdefault("gate_files", {str(g[0]): gate_record[str(g[0])]["file"] for g in info["layer_groups"]})
    done = set() if table.empty else set(map(tuple, table[[*KEY, "vector_hash"]].astype(str).to_numpy().tolist()))
    todo = []
    cell_gates: dict[str, tuple[ProbeGate, tuple[bool, ...]]] = {}
    variants = {"off": (False,), "both": (False, True), "only": (True,)}[config.gate]
    total = 0
    for name, (vec, info) in vectors.items():
        strengths = sweep_strengths(config, family(info["family"]))
        rules = info["positions"]
        groups = [tuple(g) for g in info["layer_groups"]]
        # a gate gates a vector: a prompt cell is always on; a family trained through its gate is always gated
        mine = (True,) if info["always_gated"] else (False,) if PROMPT_KEY in vec.meta else variants
        total += len(mine) * len(groups) * len(rules) * len(strengths)
        for layers in groups:
            for gated in mine:
                label = f"{name}{GATE_SUFFIX}" if gated and not info["always_gated"] else name
                gate_on = (own_gates.get(f"{name}@{layers[0]}") or layer_gates[layers[0]]) if gated else None
                gate = gate_on[0] if gate_on is not None else None
                if gate_on is not None:
                    cell_gates[f"{label}@{layers[0]}"] = gate_on
                for positions in rules:
                    key = (label, str(layers[0]), positions, config.mode, vector_hash(vec, layers, gate))
                    missing = [s for s in strengths if (key[0], key[1], str(float(s)), *key[2:]) not in done]
                    if missing:
                        todo.append((label, vec, layers, positions, missing))
    n_todo = sum(len(t[4]) for t in todo)
    skipped = total - n_todo
    record: dict[str, Any] = {"config": config.to_dict(), "fingerprint": fingerprint, "model": model.provenance(),
                              "seeds": {"split": config.split_seed, "tasks_subsets_bootstrap": config.seed},
                              "split": {**config.split.to_dict(), "test_pairs_hash": pairs_hash(test.pair_ids),
                                        "n_test_pairs": len(test.pair_ids)},
                              "test_counts": test.counts(),
                              "vectors": {k: {**v[1], "method": v[0].method, "norms": v[0].norms()}
                                          for k, v in vectors.items()}}
    old_gates = _read_record(folder).get("gates", {})
    if gate_record or old_gates:  # a later invocation that trains no gate keeps the earlier gates' record
        record["gates"] = {**old_gates, **gate_record}
    old = _read_record(folder)
    record["vectors"] = {**old.get("vectors", {}), **record["vectors"]}  # invocations on one run add methods
    record["invocations"] = [*old.get("invocations", []), {"config": config.to_dict(), "todo": n_todo}]
    for name in ("baseline", "baseline_seconds"):
        if name in old:
            record[name] = old[name]
    record["status"] = "running"
    atomic_write_json(folder / SWEEP_JSON, record)  # the fingerprint is on disk before any cell
    ran = 0

    def accept(cell: SweepCell, result: dict[str, list[dict[str, Any]]]) -> None:
        """Merge one finished pass into the tables and rewrite them atomically (the only writer)."""
        nonlocal table, gens_table, ran
        table = _merge(table, result["rows"])
        _write(folder, CELLS, table)
        if result["gen_rows"]:
            gens_table = (_merge(gens_table, result["gen_rows"]) if not gens_table.empty
                          else pd.DataFrame(result["gen_rows"]))
            _write(folder, GENERATIONS, gens_table)
        ran += len(cell.strengths)
        if progress:
            progress(len(cell.strengths), f"{cell.describe()}: {result['rows'][0]['seconds']:.1f}s/cell")

    cells = sweep_cells(todo, config.k_batch, cell_gates)
    if cells and ray is not None:
        from interp.models.memory import LoadRequest
        from steering.sweep.on_ray import run_cells_on_ray

        out = run_cells_on_ray(LoadRequest(config.model), config, cells, accept, ray, fingerprint)
        record["baseline"] = out.baseline
        record["invocations"][-1]["ray"] = {"workers": list(out.workers), "retried": out.retried}
    elif cells:
        context = CellContext(model, config, test)
        record["baseline_seconds"], record["baseline"] = context.seconds, context.baseline
        for cell in cells:
            accept(cell, context.evaluate(cell))
    record["ran"], record["skipped"] = ran, skipped
    record["seconds"] = time.perf_counter() - start
    record["invocations"][-1]["seconds"] = record["seconds"]
    record["status"] = "complete"
    atomic_write_json(folder / SWEEP_JSON, record)
    warnings = tuple(f"vector {k} ({v[1]['file']}) was not built on this sweep's split: its training pairs "
                     "cannot be checked against the test pairs" for k, v in vectors.items() if not v[1]["split_checked"])
    files = {layer: info["file"] for layer, info in gate_record.items()}
    out_vectors = {k: v[0].with_record(meta={**v[0].meta, "gate_files": v[1].get("gate_files", files)})
                   if v[1]["always_gated"] else v[0] for k, v in vectors.items()}
    if gate_record and config.gate != "off":  # a gated curve's vector names its gates (used with `steer --gate`)
        out_vectors.update({f"{k}{GATE_SUFFIX}": v.with_record(meta={**v.meta, "gate_files": files})
                            for k, v in out_vectors.items() if not vectors[k][1]["always_gated"]})
    return SweepResult(table, folder, out_vectors, ran, skipped, record["seconds"], warnings)
