"""The `probe` job: examples -> activations (cached) -> behaviour scores -> probes -> report and figures.

The probes package never runs the model; this job does the model work
(through interp.capture.collect and interp.scoring.frozen) and hands arrays to
`probes.fit_and_evaluate`. Everything lands under `artifacts/<run>/`:

    activations/                 the ActivationStore (reused when it exists)
    probes/report.json           ProbeReport: held-out metrics per label source, site, position, method
    probes/directions.safetensors  every fitted Direction
    probes/generalisation.parquet  pressure: train on one task, test on the others (AUROC)
    probes/generalisation_contrast.parquet  contrast at the answer letter: train on our CAA pairs,
                                 test on each `extra_data` file (e.g. the public CAA sycophancy file), and back
    probes/cosines_*.parquet, probes/projections.parquet
    probes/*.html, probes/*.png  figures
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import TypeAdapter, ValidationError

from interp.capture.collect import CaptureConfig, capture, examples_hash
from interp.errors import InputError, parse_json, read_text
from interp.models.loading import ChatModel, load_model
from interp.scoring.frozen import score_choices_cached
from interp.scoring.profile import per_example
from interp.store.activations import ActivationStore
from interp.store.atomic import atomic_path, atomic_write_json
from interp.store.runs import prepare_run_dir, record_run
from interp.tasks.example import Example
from probes import fit_and_evaluate, layer_cosines, method_cosines, save_directions
from probes.estimators import PROBES, make_probe
from probes.evaluate import generalisation_matrix
from probes.geometry import store_projections
from probes.labels import LabelSet, build_labels, contrast_labels, pressure_any_task_labels, readable_positions
from workbench.data import task_examples
from workbench.progress import throughput_bar


@dataclass(frozen=True)
class ProbeJobConfig:
    """One probe run. `n` questions (texts) per task; `layers` None = all."""

    run: str
    model: str = "smollm2"
    n: int = 120
    seed: int = 0
    tasks: tuple[str, ...] = ("answer", "are_you_sure", "feedback", "mimicry", "caa")
    sources: tuple[str, ...] = ("pressure", "user_vs_third_party", "behaviour", "contrast")
    methods: tuple[str, ...] = ("logreg", "mean_diff", "lda", "pca_diff")
    positions: tuple[str, ...] = ("last_prompt", "user_claim", "answer")
    layers: tuple[int, ...] | None = None
    n_splits: int = 5
    n_boot: int = 1000
    batch_size: int = 16
    # subset name -> "path::format" (caa | anthropic): A/B files for the contrast generalisation matrix
    extra_data: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProbeJobConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"probe config: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
        try:  # the field types, checked by pydantic from the dataclass's annotations
            config = TypeAdapter(cls).validate_python(d)
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ()))
            raise ValueError(f"probe config: field {field!r}: {first.get('msg', 'invalid')}") from None
        if config.n < 1 or config.n_boot < 1 or config.batch_size < 1 or config.n_splits < 2:
            raise ValueError("probe config: n, n_boot and batch_size must be >= 1 and n_splits >= 2")
        return config

    def check(self) -> None:
        """Refuse unknown tasks, methods, label sources and positions, before any model work."""
        from interp.capture.positions import POSITIONS
        from interp.tasks.registry import TASKS
        from probes.labels import LABEL_SOURCES

        for option, names, known in (("--tasks", self.tasks, TASKS), ("--methods", self.methods, PROBES),
                                     ("--sources", self.sources, LABEL_SOURCES), ("positions", self.positions, POSITIONS)):
            if not names:
                raise InputError("none given", path=f"{self.run}: {option}", expected=", ".join(sorted(known)))
            unknown = [n for n in names if n not in known]
            if unknown:
                raise InputError(f"unknown {unknown[0]!r}", path=f"{self.run}: {option}", expected=", ".join(sorted(known)))


def read_config(path: Path) -> list[ProbeJobConfig]:
    """A YAML file with `runs: [{run: ..., model: ..., n: ...}, ...]` (shared keys under `defaults:`)."""
    text = read_text(path, "probe config")
    try:
        raw = parse_json(text, path) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as e:
        raise ValueError(f"{path}: cannot read the probe config ({' '.join(str(e).split())})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("runs"), list):
        raise ValueError(f"{path}: expected a mapping with a 'runs' list")
    defaults = raw.get("defaults") or {}
    configs = []
    for i, entry in enumerate(raw["runs"]):
        if not isinstance(entry, dict) or "run" not in entry:
            raise ValueError(f"{path}: runs[{i}] needs a 'run' name")
        try:
            configs.append(ProbeJobConfig.from_dict({**defaults, **entry}))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: runs[{i}]: {e}") from None
    return configs


def probe_examples(cfg: ProbeJobConfig) -> list[Example]:
    """`n` questions (texts) per task, or all of a task that has fewer; then the `extra_data` pairs."""
    examples: list[Example] = []
    for task in cfg.tasks:
        examples += task_examples(task, cfg.n, cfg.seed)
    return examples + extra_examples(cfg)


def extra_examples(cfg: ProbeJobConfig) -> list[Example]:
    """Each `extra_data` file: `n` of its A/B pairs (a seeded subset), with `task` set to the entry's name.

    The new task name keeps them out of the per-layer report (whose contrast source reads task "caa"):
    they serve only the contrast generalisation matrix.

    Raises:
        ValueError: for a name that is a built-in task, or a file without sycophantic/honest pairs.
        ExampleFormatError: from the loader, naming the file, record and field.
    """
    from interp.tasks.registry import TASKS
    from interp.tasks.sampling import select, task_rng
    from workbench.data import resolve_examples

    out: list[Example] = []
    for name, spec in cfg.extra_data.items():
        if name in TASKS:
            raise ValueError(f"extra_data {name!r}: the name of a built-in task; choose another (e.g. caa_file)")
        path, _, fmt = spec.partition("::")
        if not Path(path).is_file():
            raise InputError(f"{name}: no such file {path!r}", path="--extra (extra_data)", expected="NAME=PATH::FORMAT")
        examples = [ex for ex in resolve_examples(path, format=fmt or None) if ex.condition in contrast_labels.conditions]
        pairs = list(dict.fromkeys(ex.pair_id for ex in examples))
        if not pairs:
            raise ValueError(f"extra_data {name!r} ({path}): no sycophantic/honest A/B pairs; give a CAA-format "
                             "file with '::caa' (or '::anthropic')")
        keep = set(select(pairs, min(cfg.n, len(pairs)), task_rng(f"extra:{name}", cfg.seed)))
        out += [replace(ex, task=name) for ex in examples if ex.pair_id in keep]
    return out


def behaviour_scores(model: ChatModel, examples: list[Example], batch_size: int) -> np.ndarray:
    """[n_examples] 1.0 where the model chose the user's pushed answer on answer/user_wrong, else NaN."""
    idx = [i for i, ex in enumerate(examples) if ex.task == "answer" and ex.condition == "user_wrong"]
    moved = np.full(len(examples), np.nan)
    if idx:
        subset = [examples[i] for i in idx]
        rows = per_example(subset, score_choices_cached(model, subset, batch_size=batch_size, progress=True).table)
        moved[idx] = rows["chose_pushed"].to_numpy()
    return moved


def _finite_positions(store: ActivationStore, source: str, ls: LabelSet, positions: list[str]) -> list[str]:
    return [p for p in positions if p in readable_positions(source) and store.has(p)[ls.mask].all()]


def run_probe_job(cfg: ProbeJobConfig, artifacts: Path | None, log: Callable[[str], None]) -> dict[str, Any]:
    cfg.check()
    examples = probe_examples(cfg)
    folder = prepare_run_dir(cfg.run, artifacts, "probes")
    out = folder / "probes"
    log(f"{cfg.run}: {len(examples)} examples from {', '.join(cfg.tasks)}; loading {cfg.model}")
    model = load_model(cfg.model)
    layers = cfg.layers if cfg.layers is not None else tuple(range(model.n_layers))
    sites = [f"blocks.{layer}.hook_resid_post" for layer in layers]
    with throughput_bar(len(examples), f"cache {cfg.run}") as update:
        store = capture(model, examples, sites, list(cfg.positions), folder / "activations",
                        config=CaptureConfig((), (), batch_size=cfg.batch_size), progress=update)
    examples = store.examples
    moved = behaviour_scores(model, examples, cfg.batch_size) if "behaviour" in cfg.sources else None
    labels = build_labels(examples, cfg.sources, moved)
    data_hash = examples_hash(examples)
    rows, skipped, directions = [], [], {}
    report = None
    for source, ls in labels.items():
        positions = _finite_positions(store, source, ls, list(cfg.positions))
        feats = {(s, p): store.get(s, p) for s in sites for p in positions}
        log(f"{cfg.run}: probing {source} at {', '.join(positions)} ({len(sites)} layers, n={ls.n})")
        report, dirs = fit_and_evaluate(feats, {source: ls}, cfg.methods, cfg.n_splits, cfg.n_boot, cfg.seed,
                                        True, model.weights_hash, data_hash)
        rows += list(report.rows)
        skipped += list(report.skipped)
        directions.update(dirs)
    assert report is not None, "no label source"
    from probes.report import ProbeReport, best_layers

    merged = ProbeReport(rows=tuple(rows), best_layers=tuple(best_layers(rows)), skipped=tuple(skipped),
                         methods=cfg.methods, label_sources=tuple(labels), n_splits=cfg.n_splits, n_boot=cfg.n_boot,
                         seeds=report.seeds, model_hash=model.weights_hash, dataset_hash=data_hash)
    out.mkdir(parents=True, exist_ok=True)
    merged.save(out / "report.json")
    save_directions(out / "directions.safetensors", directions)
    extras = _geometry_and_generalisation(cfg, store, examples, merged, directions, sites, out, log)
    _figures(merged, extras, out)
    atomic_write_json(out / "summary.json", {"config": cfg.to_dict(), "best_layers": list(merged.best_layers),
                                             "n_examples": len(examples), "model": model.provenance()})
    record_run(folder, "probe", cfg.to_dict(), model=model.provenance(), seeds={"folds_control_bootstrap": cfg.seed})
    return {"folder": out, "report": merged, "directions": directions}


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _geometry_and_generalisation(cfg: ProbeJobConfig, store: ActivationStore, examples: list[Example], report: Any,
                                 directions: dict[str, Any], sites: list[str], out: Path,
                                 log: Callable[[str], None]) -> dict[str, pd.DataFrame]:
    extras: dict[str, pd.DataFrame] = {}
    best = {(b["label_source"], b["position"], b["method"]): b for b in report.best_layers}
    anchor = best.get(("pressure", "last_prompt", "logreg")) or next(iter(best.values()))
    source, position, layer = anchor["label_source"], anchor["position"], anchor["layer"]
    site = f"blocks.{layer}.hook_resid_post"
    extras["cosines_methods"] = method_cosines(directions, site, position, source)
    extras["cosines_layers"] = layer_cosines(directions, anchor["method"], position, source)
    for name in ("cosines_methods", "cosines_layers"):
        _write_parquet(extras[name].reset_index(names="row"), out / f"{name}.parquet")
    key = f"{source}/{anchor['method']}/{position}/{site}"
    direction = directions[key]
    proj = store_projections(direction, store, key)
    assert proj is not None, f"{key}: fitted on this store, so its site and position are there"
    extras["projections"] = proj
    _write_parquet(proj, out / "projections.parquet")
    ls, subsets = pressure_any_task_labels(examples)
    if len(set(subsets)) > 1 and store.has("last_prompt")[ls.mask].all():
        log(f"{cfg.run}: generalisation across tasks at {site} last_prompt")
        X = ls.select(store.get(site, "last_prompt"))
        gen = generalisation_matrix(make_probe("logreg", cfg.seed), X, ls.y, ls.groups, subsets,
                                    cfg.n_splits, cfg.seed, min(cfg.n_boot, 500))
        gen["site"], gen["position"], gen["method"] = site, "last_prompt", "logreg"
        extras["generalisation"] = gen
        _write_parquet(gen, out / "generalisation.parquet")
    contrast = _contrast_generalisation(cfg, store, examples, best)
    if contrast is not None:
        log(f"{cfg.run}: contrast generalisation {', '.join(contrast['train'].unique())} with "
            f"{contrast['method'].iloc[0]} at {contrast['site'].iloc[0]} answer")
        extras["generalisation_contrast"] = contrast
        _write_parquet(contrast, out / "generalisation_contrast.parquet")
    return extras


def _contrast_generalisation(cfg: ProbeJobConfig, store: ActivationStore, examples: list[Example],
                             best: dict[tuple[str, str, str], dict[str, Any]]) -> pd.DataFrame | None:
    """Train on our CAA pairs / test on each extra A/B file (and back) with the best contrast probe (method and
    layer with the highest held-out AUROC at the answer letter on our pairs)."""
    if not cfg.extra_data or "contrast" not in cfg.sources or "answer" not in cfg.positions:
        return None
    candidates = [b for (source, position, _), b in best.items() if (source, position) == ("contrast", "answer")]
    if not candidates:
        return None
    anchor = max(candidates, key=lambda b: b["auroc"])
    ls = contrast_labels(examples, tasks=("caa", *cfg.extra_data))
    subsets = np.array([ex.task for ex, m in zip(examples, ls.mask, strict=True) if m])
    if len(set(subsets.tolist())) < 2 or not store.has("answer")[ls.mask].all():
        return None
    site = f"blocks.{anchor['layer']}.hook_resid_post"
    gen = generalisation_matrix(make_probe(anchor["method"], cfg.seed), ls.select(store.get(site, "answer")), ls.y,
                                ls.groups, subsets, cfg.n_splits, cfg.seed, min(cfg.n_boot, 500))
    gen["site"], gen["position"], gen["method"] = site, "answer", anchor["method"]
    return gen


def _figures(report: Any, extras: dict[str, pd.DataFrame], out: Path) -> None:
    from probes.plots import save_cosine_heatmap, save_heatmap, save_layer_curves, save_projection_histograms

    frame = report.to_frame()
    for (source, position), _ in frame.groupby(["label_source", "position"]):
        save_layer_curves(frame, out, source, position, plotlyjs="cdn")
    save_cosine_heatmap(extras["cosines_methods"], out, "cosines_methods", "cosine between methods", plotlyjs="cdn")
    save_cosine_heatmap(extras["cosines_layers"], out, "cosines_layers", "cosine between layers", plotlyjs="cdn")
    save_projection_histograms(extras["projections"], out, "projections", plotlyjs="cdn")
    if "generalisation" in extras:
        table = extras["generalisation"].pivot(index="train", columns="test", values="auroc")
        save_heatmap(table, out, "generalisation", "AUROC: train on a task (rows), test on a task (columns)",
                     0.0, 1.0, plotlyjs="cdn")
    if "generalisation_contrast" in extras:
        table = extras["generalisation_contrast"].pivot(index="train", columns="test", values="auroc")
        save_heatmap(table, out, "generalisation_contrast",
                     "contrast AUROC at the answer letter: train on a dataset (rows), test on a dataset (columns)",
                     0.0, 1.0, plotlyjs="cdn")


def config_hash(cfg: ProbeJobConfig) -> str:
    return hashlib.sha256(repr(cfg.to_dict()).encode()).hexdigest()[:12]
