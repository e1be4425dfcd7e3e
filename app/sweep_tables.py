"""The Trade-off page's tables, from a sweep's cells and records (formatting only: `steering.sweep.fits` picks cells).

- `families_table`: per method its best cell within the loss budget and the constraints
  (`steering.sweep.fits.operating_point`), the headline metrics with their 95% CIs; the unsteered model first and
  the prompting baseline's rows among the vectors', so a reader sees whether a prompt beats every vector;
- `gate_records` / `gate_table`: each gate's errors on the test set (what `steering.methods.gates.gate_errors`
  recorded in report.json and sweep.json), the gates a family learned with its vector included;
- `missing_parts`: what a sweep folder made by an older workbench lacks (the page says it, and goes on).

Example:
    >>> rows = families_table(swept.table, swept.record, "answer_shift_gain", "kl_all", 0.05, {})  # doctest: +SKIP
    >>> rows[["method", "within budget", "flips of known answers"]]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from steering.artifacts.probe_gate import GATE_SUFFIX
from steering.sweep.fits import operating_point, point_layers, prompt_cells

#: the families table's metric columns: cell column -> header (shown where the sweep has the column)
FAMILY_METRICS = {
    "neutral_accuracy": "neutral acc",
    "user_wrong_accuracy": "user-wrong acc",
    "answer_flip_rate": "flips of known answers",
    "user_right_known_accuracy": "user-right acc (known questions)",
    "kl_general": "KL general (deployment drift)",
    "kl_all": "KL on-task",
    "capability_accuracy": "capability acc",
    "arc_accuracy": "ARC acc",
    "general_degenerate": "degenerate (general prompts)",
}
#: metrics read with more digits (small numbers)
FINE = ("kl", "kl_all", "kl_user_right", "kl_general")

#: a gate's recorded errors (`steering.methods.gates.GATE_ERRORS`) -> what each counts
GATE_ERRORS = {
    "neutral_fires": "neutral prompts it fires on",
    "general_fires": "general prompts (and ARC) it fires on",
    "third_party_fires": "third-party prompts it fires on",
    "user_wrong_misses": "user-wrong prompts it misses",
    "user_right_misses": "user-right prompts it misses",
    "opinion_misses": "opinion prompts it misses (every task)",
}


def layer_text(cell: pd.Series | Mapping[str, Any]) -> str:
    """The layers a cell steers, "L8,12,16" (its `layers`, or its one `layer` in older tables).

    Example:
        >>> layer_text({"layer": 8, "layers": "8,12,16"}), layer_text({"layer": 3})
        ('L8,12,16', 'L3')
    """
    return "L" + ",".join(map(str, point_layers(dict(cell))))


def is_prompt(cell: pd.Series) -> bool:
    """Whether a cell is the prompting baseline alone (a system prompt, no vector: `prompt_cells`)."""
    return float(cell.get("vector_norm", math.nan)) == 0.0


def ci_text(cell: pd.Series, column: str) -> str:
    """'0.75 [0.60, 0.90]' (the cell's estimate and its `_low`/`_high`), '' when the cell lacks the column."""
    if column not in cell.index or pd.isna(cell[column]):
        return ""
    digits = 4 if column in FINE else 3
    signed = column.endswith(("_gain", "_drop", "_change"))
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    low, high = cell.get(f"{column}_low"), cell.get(f"{column}_high")
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return f.format(float(cell[column]))
    return f"{f.format(float(cell[column]))} [{f.format(float(low))}, {f.format(float(high))}]"


def _family(method: str, record: Mapping[str, Any]) -> str:
    base = method[: -len(GATE_SUFFIX)] if method.endswith(GATE_SUFFIX) else method
    family = str(record.get("vectors", {}).get(base, {}).get("family", ""))
    if not family and method.startswith("prompt:") and "+" not in method:
        family = "prompt"
    return f"{family} + probe gate" if base != method else family


def steering_text(cell: pd.Series) -> str:
    """How a cell steers: 'always on', or 'gated (<its gate>)'."""
    gate = cell.get("gate")
    if isinstance(gate, str) and gate != "off":
        return f"gated ({gate})"
    return "gated" if str(cell["method"]).endswith(GATE_SUFFIX) else "always on"


def families_table(table: pd.DataFrame, record: Mapping[str, Any], gain: str, loss: str, budget: float,
                   constraints: Mapping[str, float]) -> pd.DataFrame:
    """One row per method: its best cell within `loss <= budget` and `constraints`, with CIs; the unsteered first.

    A method with no such cell shows its cell of largest gain (strength 0 aside), marked "no" under
    "within budget". Rows after the unsteered one are sorted by that gain, best first.

    Args:
        table: sweep cells (the page's chosen methods).
        record: sweep.json (each vector's family).
        gain, loss, budget: the headline columns and the loss budget.
        constraints: further ceilings, column -> largest value (columns the table lacks are skipped).

    Example:
        >>> families_table(cells, record, "answer_shift_gain", "kl_all", 0.05, {})["method"].iloc[0]  # doctest: +SKIP
        'unsteered'
    """
    usable = {k: v for k, v in constraints.items() if k in table.columns}
    metrics = [c for c in dict.fromkeys([gain, loss, *FAMILY_METRICS]) if c in table.columns]
    headers = {gain: f"gain: {gain}", loss: f"loss: {loss}", **{k: v for k, v in FAMILY_METRICS.items()
                                                                  if k not in (gain, loss)}}
    rows: list[dict[str, Any]] = []
    zero = table[(table["strength"] == 0.0) & ~table["method"].astype(str).str.startswith("prompt:")]
    if not zero.empty:  # strength 0 of a vector is the unsteered model itself (with no prompt)
        base = zero.iloc[0]
        rows.append({"method": "unsteered", "family": "", "within budget": "", "strength": 0.0, "layers": "",
                     "positions": "", "steering": "none", **{headers[c]: ci_text(base, c) for c in metrics},
                     "_gain": -math.inf})
    for method, cells in table.groupby("method", sort=True):
        point = operating_point(cells, gain, loss, budget, usable)
        within = point is not None
        if point is None:
            moved = cells[cells["strength"] != 0.0] if (cells["strength"] != 0.0).any() else cells
            point = moved.loc[moved[gain].idxmax()] if moved[gain].notna().any() else moved.iloc[0]
        prompt = is_prompt(point)
        rows.append({"method": str(method), "family": _family(str(method), record),
                     "within budget": "yes" if within else "no (largest gain shown)",
                     "strength": float(point["strength"]),
                     "layers": "no vector" if prompt else layer_text(point), "positions": "" if prompt else
                     str(point["positions"]), "steering": "system prompt" if prompt else steering_text(point),
                     **{headers[c]: ci_text(point, c) for c in metrics},
                     "_gain": float(point[gain]) if pd.notna(point[gain]) else -math.inf})
    frame = pd.DataFrame(rows)
    head, rest = frame[frame["method"] == "unsteered"], frame[frame["method"] != "unsteered"]
    rest = rest.sort_values("_gain", ascending=False, kind="stable")
    return pd.concat([head, rest], ignore_index=True).drop(columns="_gain")


def prompt_verdict(table: pd.DataFrame, gain: str, loss: str, budget: float,
                   constraints: Mapping[str, float]) -> str | None:
    """One sentence: does the best prompt-only cell beat every vector within the budget? None without prompt cells.

    Example:
        >>> prompt_verdict(cells, "answer_shift_gain", "kl_all", 0.05, {})  # doctest: +SKIP
        'The best prompt alone, prompt:skeptical (answer_shift_gain +0.012), beats every vector within the budget ...'
    """
    prompts = prompt_cells(table)
    if prompts.empty:
        return None
    usable = {k: v for k, v in constraints.items() if k in table.columns}
    best_prompt = operating_point(prompts, gain, loss, budget, usable)
    best_vector = operating_point(table.drop(index=prompts.index), gain, loss, budget, usable)
    if best_prompt is None:
        return (f"No prompt alone gains ({gain} > 0) within the budget"
                + ("." if best_vector is None else f"; the best vector does: {best_vector['method']} "
                   f"({gain} {best_vector[gain]:+.3g})."))
    said = f"The best prompt alone, **{best_prompt['method']}** ({gain} {best_prompt[gain]:+.3g})"
    if best_vector is None:
        return f"{said}, beats every vector: none gains within the budget."
    if float(best_prompt[gain]) >= float(best_vector[gain]):
        return f"{said}, beats every vector within the budget (best: {best_vector['method']}, " \
               f"{best_vector[gain]:+.3g})."
    return f"{said}, is beaten by **{best_vector['method']}** ({best_vector[gain]:+.3g}) within the budget."


@dataclass(frozen=True)
class GateRecord:
    """One gate the sweep measured: the layer its curves steer first, who uses it, its training and test errors.

    Args:
        layer: the first steered layer of its curves (the records' key).
        owner: the method that learned it with its vector, or "" for the sweep's probe gate.
        wording: the wordings it was trained on ("varied", "bank"), "" when not recorded.
        test_wording: the wordings its errors were measured on, "" when not recorded.
        errors: error kind (`GATE_ERRORS`) -> rate on the test set (NaN: the test set has no such prompt).
        rates: older records' summary: hit_rate, false_positive_rate, accuracy, n.
    """

    layer: int
    owner: str
    wording: str
    test_wording: str
    errors: dict[str, float]
    rates: dict[str, float]
    reads: int | None = None

    @property
    def name(self) -> str:
        where = f"at layer {self.layer}" + (f" (reads layer {self.reads})" if self.reads not in (None, self.layer) else "")
        return f"gate of {self.owner} {where}" if self.owner else f"probe gate {where}"


def _gate(layer: str, owner: str, info: Mapping[str, Any], reported: Mapping[str, Any]) -> GateRecord:
    errors = info.get("test_errors") or reported.get("errors") or {}
    wording = info.get("train", {}).get("wording") or reported.get("wording") or ""
    reads = info.get("reads_layer", reported.get("reads_layer"))
    if reads is None:  # sweeps before the record said it: the gate file is named after the layer it reads
        found = re.search(r"layer(\d+)\.safetensors$", str(info.get("file", "")))
        reads = int(found.group(1)) if found else None
    return GateRecord(int(layer), owner, str(wording), str(info.get("test_wording") or ""),
                      {str(k): float(v) for k, v in errors.items()}, dict(info.get("test", {})),
                      None if reads is None else int(reads))


def gate_records(record: Mapping[str, Any], report: Mapping[str, Any]) -> list[GateRecord]:
    """The sweep's gates (sweep.json `gates`, report.json `gates`) and those a family learned (`vectors[m].gates`).

    Example:
        >>> [g.name for g in gate_records(swept.record, swept.report)]  # doctest: +SKIP
        ['probe gate at layer 12', 'gate of selfgated:correct at layer 12']
    """
    reported = report.get("gates") or {}
    layers = dict.fromkeys([*record.get("gates", {}), *reported])
    out = [_gate(layer, "", record.get("gates", {}).get(layer, {}), reported.get(layer, {})) for layer in layers]
    for method, info in sorted(record.get("vectors", {}).items()):
        out += [_gate(layer, method, g, {}) for layer, g in sorted(info.get("gates", {}).items())]
    return sorted(out, key=lambda g: (g.layer, g.owner))


def gate_table(gate: GateRecord) -> pd.DataFrame:
    """A gate's errors as rows (what it gets wrong, the rate on the test set); older records: its rates."""
    if gate.errors:
        kinds = [*[k for k in GATE_ERRORS if k in gate.errors], *[k for k in gate.errors if k not in GATE_ERRORS]]
        return pd.DataFrame([{"error": GATE_ERRORS.get(k, k), "rate on the test set": gate.errors[k]}
                             for k in kinds if not math.isnan(gate.errors[k])])
    labels = {"hit_rate": "opinion prompts it fires on", "false_positive_rate": "prompts with no user opinion it "
              "fires on", "accuracy": "accuracy", "n": "test prompts (a count)"}
    kinds = [*[k for k in labels if k in gate.rates], *[k for k in gate.rates if k not in labels]]
    return pd.DataFrame([{"error": labels.get(k, k), "rate on the test set": float(gate.rates[k])} for k in kinds])


def gated_methods(table: pd.DataFrame, gate: GateRecord, record: Mapping[str, Any]) -> list[str]:
    """The curves a gate steers: gated cells at its layer, of its owner (a learned gate) or not owning one."""
    if "gate" in table.columns:
        gated = table[table["gate"].astype(str) != "off"]
    else:
        gated = table[table["method"].astype(str).str.endswith(GATE_SUFFIX)]
    gated = gated[gated["layer"] == gate.layer]
    owners = {m for m, info in record.get("vectors", {}).items() if str(gate.layer) in info.get("gates", {})}
    methods = sorted(map(str, gated["method"].unique()))
    return [m for m in methods if m == gate.owner] if gate.owner else [m for m in methods if m not in owners]


def missing_parts(table: pd.DataFrame, record: Mapping[str, Any], report: Mapping[str, Any]) -> list[str]:
    """What a sweep made by an older workbench lacks, one phrase each (the page shows what it has).

    Example:
        >>> missing_parts(pd.DataFrame({"method": ["caa"], "layer": [3]}), {}, {})[0]
        'a `layers` column: each cell steers its one `layer`'
    """
    out = []
    if "layers" not in table.columns:
        out.append("a `layers` column: each cell steers its one `layer`")
    for column, what in (("kl_general", "KL on general prompts, the deployment's drift"),
                         ("answer_flip_rate", "flips of known answers"),
                         ("user_right_known_accuracy", "user-right accuracy on known questions, where contrarianism "
                                                       "shows"),
                         ("general_degenerate", "degenerate generations on general prompts")):
        if column not in table.columns:
            out.append(f"`{column}`: {what}")
    gates = gate_records(record, report)
    if gates and not any(g.errors for g in gates):
        out.append("the gates' errors by kind: only their hit and false-positive rates")
    if not measured_wording(record, report):
        out.append("a record of the wordings it was measured on")
    return out


def measured_wording(record: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    """The wordings the cells were measured on: report.json `test_wording`, else the config's; "" if unrecorded.

    Example:
        >>> measured_wording({"config": {"test": {"wording": "heldout"}}}, {})
        'heldout'
    """
    return str(report.get("test_wording") or record.get("config", {}).get("test", {}).get("wording") or "")


def constraints(record: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, float]:
    """The ceilings the operating point meets besides the budget: report.json's, else the sweep config's."""
    found = report.get("constraints") or record.get("config", {}).get("constraints") or {}
    return {str(k): float(v) for k, v in found.items()}


def gain_columns(table: pd.DataFrame) -> list[str]:
    """Columns that measure alignment gain (higher is better): `*_gain`, and `*_flip_rate_drop` (fewer flips).

    Example:
        >>> gain_columns(pd.DataFrame(columns=["answer_shift_gain", "answer_flip_rate_drop", "kl_all"]))
        ['answer_shift_gain', 'answer_flip_rate_drop']
    """
    return [c for c in _measured(table) if c.endswith(("_gain", "_flip_rate_drop"))]


def loss_columns(table: pd.DataFrame) -> list[str]:
    """Columns that measure helpfulness loss (lower is better): KL (on-task `kl_all`, `kl_general`, ...),
    accuracy drops (not the user-wrong one, nor flip-rate drops: those are gains) and degeneracy.

    Example:
        >>> loss_columns(pd.DataFrame(columns=["kl_all", "user_wrong_accuracy_drop", "capability_drop"]))
        ['kl_all', 'capability_drop']
    """
    return [c for c in _measured(table) if c.startswith("kl") or c in ("degenerate", "general_degenerate", "repetition")
            or (c.endswith("_drop") and not c.endswith(("_flip_rate_drop", "user_wrong_accuracy_drop")))]


def _measured(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if not c.endswith(("_low", "_high")) and
            (table.empty or table[c].notna().any())]
