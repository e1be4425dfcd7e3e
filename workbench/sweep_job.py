"""The `sweep` job: build vectors on the train split, sweep cells on the test split, fit, report.

Example:
    >>> out = run_sweep_job("demo", QUICK, artifacts=None, overwrite=False)  # doctest: +SKIP
    >>> out["report"]["operating_point"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from interp.capture.ray_pool import RayOptions
from interp.models.loading import load_model
from interp.store.atomic import atomic_write_json
from interp.store.runs import prepare_run_dir, record_run
from steering.evaluation.testset import TestSetConfig
from steering.methods.registry import family, resolve_method
from steering.sweep import QUICK, SweepConfig, run_sweep, sweep_strengths
from steering.sweep.report import write_report


def sweep_config(
    quick: bool, overrides: dict[str, Any], test_overrides: dict[str, Any],
    learn_overrides: dict[str, Any] | None = None,
) -> SweepConfig:
    """The preset (`QUICK` or the full default) with the options the user gave (None = not given).

    Example:
        >>> sweep_config(True, {"layers": (6,)}, {}).layers
        (6,)
    """
    base = QUICK if quick else SweepConfig()
    test = replace(base.test, **{k: v for k, v in test_overrides.items() if v is not None})
    given = {k: v for k, v in overrides.items() if v is not None}
    if "vector_files" in given and "methods" not in given:
        given["methods"] = ()
    learn = replace(base.learn, **{k: v for k, v in (learn_overrides or {}).items() if v is not None})
    return replace(base, test=TestSetConfig.from_dict(test.to_dict()), learn=learn, **given)


def run_sweep_job(run: str, config: SweepConfig, artifacts: Path | None, overwrite: bool,
                  ray: RayOptions | None = None) -> dict[str, Any]:
    """Load the model, run or resume the sweep into artifacts/<run>/sweep (over Ray actors if `ray`), report."""
    folder = prepare_run_dir(run, artifacts, "sweep")
    model = load_model(config.model)
    outside = [layer for layer in config.layers if not -model.n_layers <= layer < model.n_layers]
    if outside:
        raise ValueError(f"--layers: layer {outside[0]} is outside the model's {model.n_layers} layers "
                         f"(0..{model.n_layers - 1})")
    curves = {"off": 1, "both": 2, "only": 1}[config.gate]  # gated curves count like more methods
    total = 0
    for method in (resolve_method(m) for m in config.method_specs):
        f = family(method.family)
        total += (curves * len(f.cell_layers(method, config.layers)) * len(f.positions(method, config.positions))
                  * len(sweep_strengths(config, f)))
    bar = tqdm(total=total, desc=f"sweep {run}", unit="cell", dynamic_ncols=True)

    def progress(n: int, message: str) -> None:
        bar.update(n)
        bar.set_postfix_str(message)

    try:
        result = run_sweep(config, folder / "sweep", model, reuse=[folder / "activations"], overwrite=overwrite,
                           progress=progress, ray=ray)
    finally:
        bar.close()
    report = write_report(folder / "sweep", result.table, result.vectors, config.gain, config.loss, config.budget,
                          config.constraints)
    report["test_wording"] = config.test.wording
    record = json.loads((folder / "sweep" / "sweep.json").read_text())
    report["gates"] = {layer: {"errors": g.get("test_errors", {}), "wording": g.get("train", {}).get("wording"),
                               "reads_layer": g.get("reads_layer", int(layer))}
                       for layer, g in record.get("gates", {}).items()}
    atomic_write_json(folder / "sweep" / "report.json", report)  # the file says what the printed report says
    record_run(folder, "sweep", config.to_dict(), model=model.provenance(),
               seeds={"split": config.split_seed, "tasks_subsets_bootstrap": config.seed})
    return {"folder": folder / "sweep", "report": report, "ran": result.ran, "skipped": result.skipped,
            "seconds": result.seconds, "table": result.table, "warnings": result.warnings}


def _ci(cell: dict[str, Any], column: str) -> str:
    if column not in cell:
        return ""
    est, low, high = cell[column]
    return f"{est:+.3f} [{low:+.3f},{high:+.3f}]"


def print_report(report: dict[str, Any]) -> None:
    """The operating point, the law fits and each method's best and worst cell, as tables."""
    console = Console(width=max(Console().width, 150))
    gain, loss = report["gain"], report["loss"]
    columns = dict.fromkeys([gain, "answer_flip_rate", "answer_deference_gain", "answer_control_shift_change", loss,
                             "kl_general", "user_wrong_accuracy", "third_party_accuracy",
                             "neutral_accuracy_drop", "user_right_known_accuracy_drop", "capability_drop", "arc_drop",
                             *report.get("constraints", {})])
    short = {gain: f"gain ({gain})", "answer_deference_gain": "deference gain",
             "answer_control_shift_change": "3rd-party shift change", loss: f"loss ({loss})",
             "neutral_accuracy_drop": "neutral acc drop", "user_right_accuracy_drop": "user-right acc drop",
             "user_wrong_accuracy": "user-wrong acc", "third_party_accuracy": "3rd-party-wrong acc",
             "capability_drop": "capability drop", "answer_flip_rate": "flips of known answers",
             "kl_general": "KL general prompts", "user_right_known_accuracy_drop": "user-right (known) acc drop",
             "arc_drop": "ARC acc drop"}
    limits = "".join(f", {k} <= {v:g}" for k, v in report.get("constraints", {}).items())
    table = Table(title=f"per method: best and worst cell by {gain} (95% CI); budget {loss} <= {report['budget']}{limits}")
    for name in ("method", "cell", "layer", "strength", "positions", *(short.get(c, c) for c in columns)):
        table.add_column(name, overflow="fold")
    for method, cells in report["methods"].items():
        for which, label in (("best_within_budget", "best in budget"), ("best", "best"), ("worst", "worst")):
            cell = cells[which]
            if cell is None:
                table.add_row(method, label, "-", "-", "-", *["" for _ in columns])
                continue
            table.add_row(method, label, str(cell["layer"]), f"{cell['strength']:+g}", cell["positions"],
                          *(_ci(cell, c) for c in columns))
    console.print(table)
    laws = report["law_summary"]
    for what in ("gain", "loss"):
        if what in laws:
            s = laws[what]
            console.print(f"{what}: {s['law']} law median R2 {s['median_r2_law']:.2f} vs {s['alternative']} "
                          f"{s['median_r2_alternative']:.2f}; the law fits better on {s['law_wins']}/{s['curves']} curves")
    console.print(f"measured on the {report.get('test_wording', 'heldout')} wordings (the answer task's opinion "
                  "sentences and layouts; 'heldout' and 'dev' are never trained on)")
    for layer, gate in report.get("gates", {}).items():
        errors = ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in gate["errors"].items() if v == v)
        console.print(f"gate of layer {layer} (reads layer {gate.get('reads_layer', layer)}, trained on the "
                      f"{gate['wording']} wordings), errors on the test set: "
                      f"{errors}")
    point = report["operating_point"]
    if point is None:
        console.print(f"[bold]no operating point[/bold]: no cell has a positive {gain} with {loss} <= {report['budget']}"
                      f"{limits}; each method's best cell in the budget is in the table above (`workbench export "
                      "--sweep ... --method NAME` exports one)")
    else:
        console.print(f"[bold]operating point[/bold]: {point['method']} layer {point['layer']} strength "
                      f"{point['strength']:+g} positions {point['positions']}: {gain} {_ci(point, gain)}, "
                      f"{loss} {_ci(point, loss)}")
        if "answer_deference_gain" in point and "answer_control_shift_change" in point:
            deference, control = point["answer_deference_gain"], point["answer_control_shift_change"]
            specific = "user-specific" if deference[1] > 0 else "NOT user-specific (its CI includes 0 or is below)"
            console.print(f"  next to the third-party control: deference gain {_ci(point, 'answer_deference_gain')} "
                          f"is {specific}; third-party shift change {_ci(point, 'answer_control_shift_change')}"
                          + (" (the model copies ANY answer in context less)" if control[2] < 0 else ""))
    for pair in report.get("gate_comparison", []):
        cells = {k: pair[k] for k in ("always_on", "gated")}
        text = {k: ("no cell within the budget" if c is None else
                    f"strength {c['strength']:+g}: {gain} {_ci(c, gain)}, {loss} {_ci(c, loss)}, "
                    f"deference gain {_ci(c, 'answer_deference_gain')}, user-right accuracy drop "
                    f"{_ci(c, 'user_right_accuracy_drop')}") for k, c in cells.items()}
        console.print(f"[bold]gate[/bold] {pair['method']} layer {pair['layer']} {pair['positions']}: always on "
                      f"{text['always_on']} | gated {text['gated']}")
    if report.get("transfer"):
        _print_transfer(console, report["transfer"])
    for name, paths in report["figures"].items():
        console.print(f"figure {name}: {paths['png']} | {paths['html']}")


def _print_transfer(console: Console, rows: list[dict[str, Any]]) -> None:
    """The train-task x test-task matrix: shift gain [95% CI] and flip rate unsteered -> steered."""
    from steering.sweep.metrics import MAIN_EFFECTS

    first = rows[0]
    table = Table(title=f"transfer: trained on (rows) x measured on (columns), strength {first['strength']:+g}, "
                        f"layer {first['layer']}, {first['positions']}: shift gain [95% CI]; flip rate base -> steered")
    table.add_column("trained on")
    for task in MAIN_EFFECTS:
        table.add_column(task, overflow="fold")
    for row in rows:
        cells = []
        for task in MAIN_EFFECTS:
            gain = [row.get(f"{task}_shift_gain{s}", float("nan")) for s in ("", "_low", "_high")]
            flip = (row.get(f"{task}_flip_rate_base", float("nan")), row.get(f"{task}_flip_rate", float("nan")))
            text = "" if gain[0] != gain[0] else f"{gain[0]:+.2f} [{gain[1]:+.2f},{gain[2]:+.2f}]"
            if flip[1] == flip[1]:
                text += f"; flips {flip[0]:.2f} -> {flip[1]:.2f}"
            cells.append(text)
        table.add_row(str(row["trained_on"]), *cells)
    console.print(table)
