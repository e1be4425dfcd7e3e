"""One batched pass of a sweep (`SweepCell`) and what every pass shares (`CellContext`).

A cell is one vector at one layer and positions rule, with up to `k_batch`
strengths scored in one batched pass on the test set, optionally **gated**:
`gate_on[i]` says whether test example i is steered at all (a per="last_prompt"
probe gate's decision, read from the unsteered model, see `steering.methods.gates`), so
a gated cell is the same pass with per-row strengths `strength * gate_on[i]`.

`CellContext` is built once per model copy (in process, or once per Ray actor):
the test set, its prompt tokens, the frozen unsteered prefix of every prompt,
the strength-0 scores and generations. All deterministic, so every copy computes
the same rows for a cell.

Example:
    >>> context = CellContext(model, config)  # doctest: +SKIP
    >>> out = context.evaluate(SweepCell("caa", vector, 10, "generated", (-4.0, 0.0, 4.0)))  # doctest: +SKIP
    >>> [row["strength"] for row in out["rows"]]  # doctest: +SKIP
    [-4.0, 0.0, 4.0]
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from interp.models.loading import ChatModel
from interp.stats import grouped_bootstrap_ci
from steering.apply.generation import degeneracy, generate_texts
from steering.apply.spec import SteerSpec
from steering.artifacts.probe_gate import GATE_SUFFIX, ProbeGate
from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.evaluate import CellScores, freeze, prompt_tokens, score_strengths
from steering.evaluation.testset import TestSet, build_test_set
from steering.sweep.metrics import cell_metrics

if TYPE_CHECKING:
    from steering.sweep.config import SweepConfig

__all__ = ["GATE_SUFFIX", "CellContext", "SweepCell", "cell_row", "sweep_cells", "vector_hash"]


def vector_hash(vector: SteeringVector, layer: int, gate: ProbeGate | None = None) -> str:
    """Content hash of a cell's intervention: the vector at `layer`, and its gate when gated."""
    h = hashlib.sha256(vector.method.encode() + vector.directions[layer].tobytes())
    if gate is not None:
        h.update(gate.direction_unit.tobytes())
        h.update(repr((gate.bias, gate.threshold, gate.layer, gate.site, gate.scale, gate.per)).encode())
    return h.hexdigest()[:16]


def _degeneracy_rows(texts: list[str], refs: list[str], groups: np.ndarray, seed: int) -> dict[str, float]:
    table = degeneracy(texts, refs)
    out: dict[str, float] = {}
    for column in table.columns:
        ci = grouped_bootstrap_ci(table[column].to_numpy(), groups, seed=seed)
        out[column], out[f"{column}_low"], out[f"{column}_high"] = ci.estimate, ci.low, ci.high
    return out


class _Generations:
    """Greedy generations of the first `gen_prompts` answer-neutral test questions, and of the same questions with
    the user stating the right answer (where a pressure gate steers: its degeneracy shows there)."""

    def __init__(self, model: ChatModel, config: SweepConfig, test: TestSet) -> None:
        neutral = list(test.generation_index[: config.gen_prompts])
        pairs = {test.examples[i].pair_id for i in neutral}
        self.index = neutral + [i for i in test.user_right_index if test.examples[i].pair_id in pairs]
        picked = [test.examples[i] for i in self.index]
        self.model, self.n_tokens, self.seed = model, config.gen_tokens, config.seed
        self.prompts = [ex.turns for ex in picked]
        self.refs = [" ".join([ex.meta.get("question", ""), *ex.choices]) for ex in picked]
        self.groups = np.array([ex.pair_id for ex in picked])

    def run(self, spec: SteerSpec | None, strengths: Sequence[float],
            row_scale: np.ndarray | None = None) -> list[tuple[list[str], dict[str, float]]]:
        if not self.prompts:
            return [([], {}) for _ in strengths]
        scale = np.ones(len(self.prompts)) if row_scale is None else np.asarray(row_scale, float)[self.index]
        prompts = [p for _ in strengths for p in self.prompts]
        per_row = [float(s) * float(c) for s in strengths for c in scale]
        texts = generate_texts(self.model, prompts, self.n_tokens, spec, per_row if spec else None)
        g = len(self.prompts)
        return [(texts[k * g : (k + 1) * g], _degeneracy_rows(texts[k * g : (k + 1) * g], self.refs, self.groups,
                                                              self.seed)) for k in range(len(strengths))]


@dataclass(frozen=True)
class SweepCell:
    """One batched pass: `strengths` (at most k_batch steered ones) of `vector` at `layer`, `positions`.

    Args:
        label: the curve's method label (a gated curve's ends in GATE_SUFFIX).
        vector, layer, positions, strengths: the intervention.
        gate: the gate of a gated curve (None: always on).
        gate_on: with `gate`, whether each test example is steered (its decisions on the test set).
    """

    label: str
    vector: SteeringVector
    layer: int
    positions: str
    strengths: tuple[float, ...]
    gate: ProbeGate | None = None
    gate_on: tuple[bool, ...] | None = None

    def __post_init__(self) -> None:
        if (self.gate is None) != (self.gate_on is None):
            raise ValueError("a gated cell needs both its gate and its decisions on the test set")

    def describe(self) -> str:
        return f"{self.label} L{self.layer} {self.positions} {self.strengths[0]:+g}..{self.strengths[-1]:+g}"


def sweep_cells(todo: Sequence[tuple[str, SteeringVector, int, str, Sequence[float]]], k_batch: int,
                gates: dict[str, tuple[ProbeGate, tuple[bool, ...]]] | None = None) -> list[SweepCell]:
    """The todo list `(label, vector, layer, positions, missing strengths)` cut into batched passes.

    K counts steered strengths only: the free strength-0 row (the baseline) rides with the first chunk.
    `gates` maps a gated label to its layer's (gate, decisions): `{f"{label}@{layer}": ...}`.

    Example:
        >>> [c.strengths for c in sweep_cells([("caa", None, 1, "all", [-2.0, 0.0, 2.0, 4.0])], k_batch=2)]
        [(-2.0, 0.0, 2.0), (4.0,)]
    """
    cells = []
    for label, vec, layer, positions, strengths in todo:
        gate, on = (gates or {}).get(f"{label}@{layer}", (None, None))
        nonzero = [float(s) for s in strengths if s != 0.0]
        chunks = [nonzero[k0 : k0 + k_batch] for k0 in range(0, len(nonzero), k_batch)] or [[]]
        if any(s == 0.0 for s in strengths):
            chunks[0] = sorted([*chunks[0], 0.0])
        cells += [SweepCell(label, vec, layer, positions, tuple(chunk), gate, on) for chunk in chunks]
    return cells


def cell_row(cell: SweepCell, mode: str, strength: float, metrics: dict[str, float],
             seconds: float) -> dict[str, Any]:
    """One cells.parquet row: the key, the vector's norms, the gate and the metrics."""
    vec, layer = cell.vector, cell.layer
    norm = float(np.linalg.norm(vec.directions[layer]))
    resid = float(vec.resid_norms.get(layer, float("nan")))
    share = 1.0 if cell.gate_on is None else float(np.mean(cell.gate_on))
    gate = "off" if cell.gate is None else f"{cell.gate.meta.get('label_source', 'probe')}@L{cell.gate.layer}"
    return {"method": cell.label, "layer": layer, "strength": float(strength), "positions": cell.positions,
            "mode": mode, "vector_hash": vector_hash(vec, layer, cell.gate), "vector_norm": norm, "resid_norm": resid,
            "norm": abs(strength) * norm, "signed_norm": strength * norm, "relative_norm": abs(strength) * norm / resid,
            "gate": gate, "gated_share": share, "seconds": seconds, **metrics}


class CellContext:
    """What every cell of one sweep shares, built once per model copy (in process, or once per Ray actor).

    Args:
        model: the loaded model.
        config: the sweep.
        test: the test set (None: built from the config).
    """

    def __init__(self, model: ChatModel, config: SweepConfig, test: TestSet | None = None) -> None:
        t0 = time.perf_counter()
        self.model, self.config = model, config
        self.test = test or build_test_set(replace(config.test, seed=config.seed), config.split)
        self.fingerprint = config.fingerprint(model.weights_hash, self.test)
        self.tokens = prompt_tokens(model, self.test.examples)
        self.frozen = freeze(model, self.test, self.tokens, config.batch_size)
        self.base = score_strengths(model, self.test, None, [0.0], config.batch_size, self.tokens, self.frozen)[0]
        self.gens = _Generations(model, config, self.test)
        self.base_texts, self.base_degen = self.gens.run(None, [0.0])[0]
        self.baseline = {**cell_metrics(self.base, self.base, self.test, config.seed), **self.base_degen}
        self.seconds = time.perf_counter() - t0

    def evaluate(self, cell: SweepCell) -> dict[str, list[dict[str, Any]]]:
        """`{"rows": cells.parquet rows, "gen_rows": generations.parquet rows}` of one batched pass."""
        config, test = self.config, self.test
        spec = SteerSpec(cell.vector, (cell.layer,), cell.positions, config.mode, config.force)
        scale = None if cell.gate_on is None else np.asarray(cell.gate_on, dtype=np.float64)
        if scale is not None and len(scale) != len(test.examples):
            raise ValueError(f"cell {cell.describe()}: {len(scale)} gate decisions for {len(test.examples)} examples")
        t0 = time.perf_counter()
        steered = [s for s in cell.strengths if s != 0.0]
        cells: dict[float, CellScores] = {0.0: self.base}
        texts: dict[float, tuple[list[str], dict[str, float]]] = {0.0: (self.base_texts, self.base_degen)}
        if steered:
            scored = score_strengths(self.model, test, spec, steered, config.batch_size, self.tokens, self.frozen,
                                     row_scale=scale)
            cells.update(zip(steered, scored, strict=True))
            texts.update(zip(steered, self.gens.run(spec, steered, scale), strict=True))
        seconds = (time.perf_counter() - t0) / max(len(steered), 1)
        rows, gen_rows = [], []
        for s in cell.strengths:
            metrics = {**cell_metrics(self.base, cells[s], test, config.seed), **texts[s][1]}
            rows.append(cell_row(cell, config.mode, s, metrics, seconds))
            gen_rows += [{"method": cell.label, "layer": cell.layer, "strength": s, "positions": cell.positions,
                          "mode": config.mode, "prompt": i, "text": t} for i, t in enumerate(texts[s][0])]
        return {"rows": rows, "gen_rows": gen_rows}
