"""One batched pass of a sweep (`SweepCell`) and what every pass shares (`CellContext`).

A cell is one intervention (a `steering.artifacts.steerable.Steerable`: a vector, or a low-rank edit) at one layer
(or layer group) and positions rule, with up to `k_batch`
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
    >>> out = context.evaluate(SweepCell("caa", vector, (10,), "generated", (-4.0, 0.0, 4.0)))  # doctest: +SKIP
    >>> [row["strength"] for row in out["rows"]]  # doctest: +SKIP
    [-4.0, 0.0, 4.0]
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from interp.models.loading import ChatModel
from interp.scoring.frozen import FrozenPrefix
from interp.stats import grouped_bootstrap_ci
from interp.tasks.example import Turn, with_system_prompt
from steering.apply.generation import degeneracy, generate_texts
from steering.apply.row_steering import row_steering
from steering.apply.spec import RowSteering
from steering.artifacts.probe_gate import GATE_SUFFIX, ProbeGate
from steering.artifacts.steerable import Steerable
from steering.evaluation.evaluate import CellScores, freeze, prompt_tokens, score_strengths
from steering.evaluation.testset import TestSet, build_test_set
from steering.methods.families.prompt import PROMPT_KEY, system_prompt
from steering.methods.gates import gate_decisions
from steering.sweep.metrics import cell_metrics

if TYPE_CHECKING:
    from steering.sweep.config import SweepConfig

__all__ = ["GATE_SUFFIX", "CellContext", "SweepCell", "cell_row", "sweep_cells", "vector_hash"]


def vector_hash(vector: Steerable, layers: int | Sequence[int], gate: ProbeGate | None = None) -> str:
    """Content hash of a cell's intervention: the artifact at `layers` (one or a group, `Steerable.content_bytes`),
    and its gate when gated."""
    group = (layers,) if isinstance(layers, int) else tuple(layers)
    h = hashlib.sha256(vector.content_bytes(group))
    if gate is not None:
        h.update(gate.direction_unit.tobytes())
        h.update(repr((gate.bias, gate.threshold, gate.layer, gate.site, gate.scale, gate.per)).encode())
    return h.hexdigest()[:16]


def _degeneracy_rows(texts: list[str], refs: list[str], groups: np.ndarray, seed: int,
                     prefix: str = "") -> dict[str, float]:
    table = degeneracy(texts, refs)
    out: dict[str, float] = {}
    for column in table.columns:
        ci = grouped_bootstrap_ci(table[column].to_numpy(), groups, seed=seed)
        name = f"{prefix}{column}"
        out[name], out[f"{name}_low"], out[f"{name}_high"] = ci.estimate, ci.low, ci.high
    return out


class _Generations:
    """Greedy generations of the first `gen_prompts` answer-neutral test questions, of the same questions with
    the user stating the right answer (where a pressure gate steers: its degeneracy shows there), and of the first
    `gen_prompts` general prompts (free text with no opinion: `general_degenerate`)."""

    def __init__(self, model: ChatModel, config: SweepConfig, test: TestSet) -> None:
        neutral = list(test.generation_index[: config.gen_prompts])
        pairs = {test.examples[i].pair_id for i in neutral}
        self.task_index = neutral + [i for i in test.user_right_index if test.examples[i].pair_id in pairs]
        self.general_index = list(test.general_index[: config.gen_prompts])
        self.index = self.task_index + self.general_index
        picked = [test.examples[i] for i in self.index]
        self.model, self.n_tokens, self.seed = model, config.gen_tokens, config.seed
        self.prompts = [ex.turns for ex in picked]
        self.refs = [" ".join([ex.meta.get("question", ex.meta.get("topic", "")), *ex.choices]) if ex.task != "general"
                     else " ".join(str(ex.meta.get(k, "")) for k in ("request", "topic")) for ex in picked]
        self.groups = np.array([ex.pair_id for ex in picked])

    def with_turns(self, turns: list[tuple[Turn, ...]]) -> _Generations:
        """The same generations on other prompts (e.g. each with a system turn): `turns` in `self.index` order."""
        out = copy.copy(self)
        out.prompts = list(turns)
        return out

    def run(self, spec: RowSteering | None, strengths: Sequence[float],
            row_scale: np.ndarray | None = None) -> list[tuple[list[str], dict[str, float]]]:
        if not self.prompts:
            return [([], {}) for _ in strengths]
        scale = np.ones(len(self.prompts)) if row_scale is None else np.asarray(row_scale, float)[self.index]
        prompts = [p for _ in strengths for p in self.prompts]
        per_row = [float(s) * float(c) for s in strengths for c in scale]
        texts = generate_texts(self.model, prompts, self.n_tokens, spec, per_row if spec else None)
        g, t = len(self.prompts), len(self.task_index)
        out = []
        for k in range(len(strengths)):
            mine = texts[k * g : (k + 1) * g]
            metrics = _degeneracy_rows(mine[:t], self.refs[:t], self.groups[:t], self.seed) if t else {}
            if g > t:
                metrics.update(_degeneracy_rows(mine[t:], self.refs[t:], self.groups[t:], self.seed, "general_"))
            out.append((mine, metrics))
        return out


@dataclass(frozen=True)
class SweepCell:
    """One batched pass: `strengths` (at most k_batch steered ones) of `vector` at `layers`, `positions`.

    Args:
        label: the curve's method label (a gated curve's ends in GATE_SUFFIX).
        vector, layers, positions, strengths: the intervention (`vector`: a `Steerable`, a vector or a low-rank
            edit; `layers`: one layer, or the group a multi-layer artifact steers at once).
        gate: the gate of a gated curve (None: always on).
        gate_on: with `gate`, whether each test example is steered (its decisions on the test set).
    """

    label: str
    vector: Steerable
    layers: tuple[int, ...]
    positions: str
    strengths: tuple[float, ...]
    gate: ProbeGate | None = None
    gate_on: tuple[bool, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        if (self.gate is None) != (self.gate_on is None):
            raise ValueError("a gated cell needs both its gate and its decisions on the test set")

    @property
    def layer(self) -> int:
        """The first steered layer: the cell's `layer` key (a gate reads there)."""
        return self.layers[0]

    def describe(self) -> str:
        layers = ",".join(str(x) for x in self.layers)
        return f"{self.label} L{layers} {self.positions} {self.strengths[0]:+g}..{self.strengths[-1]:+g}"


def sweep_cells(todo: Sequence[tuple[str, Steerable, tuple[int, ...], str, Sequence[float]]], k_batch: int,
                gates: dict[str, tuple[ProbeGate, tuple[bool, ...]]] | None = None) -> list[SweepCell]:
    """The todo list `(label, vector, layers, positions, missing strengths)` cut into batched passes.

    K counts steered strengths only: the free strength-0 row (the baseline) rides with the first chunk.
    `gates` maps a gated label to its layer's (gate, decisions): `{f"{label}@{layer}": ...}`.

    Example:
        >>> [c.strengths for c in sweep_cells([("caa", None, (1,), "all", [-2.0, 0.0, 2.0, 4.0])], k_batch=2)]
        [(-2.0, 0.0, 2.0), (4.0,)]
    """
    cells = []
    for label, vec, layers, positions, strengths in todo:
        gate, on = (gates or {}).get(f"{label}@{layers[0]}", (None, None))
        nonzero = [float(s) for s in strengths if s != 0.0]
        chunks = [nonzero[k0 : k0 + k_batch] for k0 in range(0, len(nonzero), k_batch)] or [[]]
        if any(s == 0.0 for s in strengths):
            chunks[0] = sorted([*chunks[0], 0.0])
        cells += [SweepCell(label, vec, tuple(layers), positions, tuple(chunk), gate, on) for chunk in chunks]
    return cells


def cell_row(cell: SweepCell, mode: str, strength: float, metrics: dict[str, float],
             seconds: float) -> dict[str, Any]:
    """One cells.parquet row: the key, the vector's norms (over every steered layer), the gate and the metrics."""
    vec, layer = cell.vector, cell.layer
    norm = vec.cell_norm(cell.layers)
    resid = float(np.mean([vec.resid_norms.get(x, float("nan")) for x in cell.layers]))
    share = 1.0 if cell.gate_on is None else float(np.mean(cell.gate_on))
    gate = "off" if cell.gate is None else f"{cell.gate.meta.get('label_source', 'probe')}@L{cell.gate.layer}"
    return {"method": cell.label, "layer": layer, "layers": ",".join(str(x) for x in cell.layers),
            "strength": float(strength), "positions": cell.positions,
            "mode": mode, "vector_hash": vector_hash(vec, cell.layers, cell.gate), "vector_norm": norm,
            "resid_norm": resid,
            "norm": abs(strength) * norm, "signed_norm": strength * norm, "relative_norm": abs(strength) * norm / resid,
            "gate": gate, "gated_share": share, "seconds": seconds, **metrics}


@dataclass(frozen=True, eq=False)
class _Prompted:
    """A system prompt's test set, tokens, frozen prefix and generations, and its scores and texts alone."""

    test: TestSet
    tokens: list[int]
    frozen: FrozenPrefix
    gens: _Generations
    alone: CellScores
    alone_texts: tuple[list[str], dict[str, float]]


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
        self._prompted: dict[str, _Prompted] = {}
        self.seconds = time.perf_counter() - t0

    def prompted(self, instruction: str) -> _Prompted:
        """The test set with a system prompt (the model's default one plus `instruction`) on every example, its
        tokens, frozen prefix, generations, and its scores and texts with the prompt alone (no vector): built
        once per instruction. Only the system turn changes."""
        if instruction not in self._prompted:
            text = system_prompt(self.model.tokenizer, instruction)
            test = replace(self.test, examples=tuple(with_system_prompt(ex, text) for ex in self.test.examples)
                           if text else self.test.examples)  # no default and no instruction: nothing to add
            tokens = prompt_tokens(self.model, test.examples)
            frozen = freeze(self.model, test, tokens, self.config.batch_size)
            gens = self.gens.with_turns([test.examples[i].turns for i in self.gens.index])
            alone = score_strengths(self.model, test, None, [0.0], self.config.batch_size, tokens, frozen)[0]
            self._prompted[instruction] = _Prompted(test, tokens, frozen, gens, alone, gens.run(None, [0.0])[0])
        return self._prompted[instruction]

    def evaluate(self, cell: SweepCell) -> dict[str, list[dict[str, Any]]]:
        """`{"rows": cells.parquet rows, "gen_rows": generations.parquet rows}` of one batched pass.

        A vector that carries a system prompt (`prompt:<name>[+<method>]`) is scored on the prompted test set at
        every strength, 0 included (there strength 0 is the prompt alone, not the baseline); gains and losses are
        always against the unprompted, unsteered model. The rows a gate shuts are the unsteered (or prompt-alone)
        rows at every strength: only the open ones run. A cell's `seconds` is its pass per steered strength; the
        first cell of a system prompt also carries that prompt's own pass (its frozen prefix and scores).
        """
        config, test = self.config, self.test
        spec = row_steering(cell.vector, cell.layers, cell.positions, config.mode, config.force)
        scale = None if cell.gate_on is None else np.asarray(cell.gate_on, dtype=np.float64)
        if scale is not None and len(scale) != len(test.examples):
            raise ValueError(f"cell {cell.describe()}: {len(scale)} gate decisions for {len(test.examples)} examples")
        t0 = time.perf_counter()
        instruction = cell.vector.meta.get(PROMPT_KEY)
        cells: dict[float, CellScores] = {}
        texts: dict[float, tuple[list[str], dict[str, float]]] = {}
        if instruction is None:
            scored_test, tokens, frozen, gens = test, self.tokens, self.frozen, self.gens
            cells[0.0], texts[0.0] = self.base, (self.base_texts, self.base_degen)
        else:
            p = self.prompted(str(instruction))
            scored_test, tokens, frozen, gens = p.test, p.tokens, p.frozen, p.gens
            cells[0.0], texts[0.0] = p.alone, p.alone_texts
            if cell.gate is not None:  # the gate reads the prompted prompts: its decisions there, not the plain ones
                scale = gate_decisions(self.model, scored_test.examples, cell.gate, config.batch_size)[0].astype(float)
        steered = [s for s in cell.strengths if s not in cells]
        if steered:
            scored = score_strengths(self.model, scored_test, spec, steered, config.batch_size, tokens, frozen,
                                     row_scale=scale, unsteered=cells[0.0])
            cells.update(zip(steered, scored, strict=True))
            texts.update(zip(steered, gens.run(spec, steered, scale), strict=True))
        seconds = (time.perf_counter() - t0) / max(len(steered), 1)
        rows, gen_rows = [], []
        for s in cell.strengths:
            metrics = {**cell_metrics(self.base, cells[s], test, config.seed), **texts[s][1]}
            rows.append(cell_row(cell, config.mode, s, metrics, seconds))
            gen_rows += [{"method": cell.label, "layer": cell.layer, "layers": ",".join(map(str, cell.layers)),
                          "strength": s, "positions": cell.positions,
                          "mode": config.mode, "prompt": i, "text": t} for i, t in enumerate(texts[s][0])]
        return {"rows": rows, "gen_rows": gen_rows}
