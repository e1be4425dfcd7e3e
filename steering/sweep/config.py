"""What defines a sweep: `SweepConfig` (saved to sweep.json, a run is reproducible from it), `QUICK`, strengths.

Example:
    >>> SweepConfig(methods=("caa",), layers=(10,)).split
    PairSplit(seed=0, test_fraction=0.3)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from steering.apply.interventions import MODES, POSITIONS
from steering.evaluation.splits import PairSplit
from steering.evaluation.testset import TestSet, TestSetConfig
from steering.methods.family import Family
from steering.methods.gates import GATE_SOURCES
from steering.methods.learned import LearnConfig
from steering.methods.registry import family, resolve_method
from steering.sweep.metrics import METRICS_VERSION

#: "off": every curve always on; "both": each curve also gated by a user-opinion probe; "only": gated curves only
GATE_CHOICES = ("off", "both", "only")

class SweepConfigError(ValueError):
    """A sweep folder made with another test set, split or model."""


#: the scorer named in every fingerprint: the one scorer (`interp.scoring.frozen`). A sweep could once choose
#: "full" (the plain reference, now for the tests only); sweeps scored "cached" keep their fingerprint and resume.
SCORER = "cached"


@dataclass(frozen=True)
class SweepConfig:
    """Everything that defines a sweep (saved to sweep.json; a run is reproducible from it).

    Args:
        model: model spec.
        methods: vector methods to build (steering.methods.statistics), e.g. ("caa", "user_minus_third_party").
        vector_files: extra vectors to sweep, read from files.
        layers: layers to steer, one at a time.
        strengths: multipliers of the raw vector (negative: away from sycophancy).
        positions: "all", "prompt", "generated" (steering.apply.spec).
        mode: "add", "ablate" or "clamp".
        test: the test set's sizes.
        split_seed, test_fraction: the pair split (train for vectors, test for metrics).
        n_train: training pairs per vector (None: the whole train side).
        seed: task generation, bootstrap and subset seed.
        batch_size: sequences (contexts) per forward pass.
        k_batch: strengths per batched pass.
        gen_prompts, gen_tokens: greedy generations per cell for degeneracy (0 prompts: skip).
        gain, loss, budget: headline metrics and the loss budget of the operating point.
        constraints: further ceilings the operating point must meet, column -> largest value (e.g.
            {"neutral_accuracy_drop": 0.02, "user_right_known_accuracy_drop": 0.02}).
        force: use vector files built on another model hash.
        gate: "off", "both" or "only": add curves (label + "+gate") steered only where a user-opinion probe,
            trained on the train split at the steered layer, reads pressure at the last prompt token
            (`steering.methods.gates`); "both" compares them with always-on steering.
        gate_source: what the gates read (`steering.methods.gates.GATE_SOURCES`): "suggestion" (anybody suggests
            an answer: the user or a third party) or "user_opinion" (the user's own).
        gate_layer: the layer every gate reads (at or before each curve's first steered layer); None: each
            curve's first steered layer.
        gate_fpr: the share of train-side prompts with no opinion the gates may fire on (their threshold is
            calibrated to it); None: the probe's own 0.5.
        family_strengths: family name -> its strength grid, instead of the family's default
            (`steering.methods.family.Family.strengths`; e.g. a learned vector is trained at -1) or `strengths`.
        learn: how learned vectors train (`steering.methods.learned.LearnConfig`; layer, positions and target come
            from the method, seed and pairs from the sweep).
    """

    model: str = "smollm2"
    methods: tuple[str, ...] = ("caa", "user_minus_third_party", "opinion_minus_neutral")
    vector_files: tuple[str, ...] = ()
    layers: tuple[int, ...] = (6, 10, 14)
    strengths: tuple[float, ...] = (-16.0, -8.0, -4.0, -2.0, 2.0, 4.0, 8.0, 16.0)
    positions: tuple[str, ...] = ("generated",)
    mode: str = "add"
    test: TestSetConfig = field(default_factory=TestSetConfig)
    split_seed: int = 0
    test_fraction: float = 0.3
    n_train: int | None = 64
    seed: int = 0
    batch_size: int = 16
    k_batch: int = 8
    gen_prompts: int = 3
    gen_tokens: int = 24
    gain: str = "answer_shift_gain"
    loss: str = "kl_all"
    budget: float = 0.1
    constraints: dict[str, float] = field(default_factory=dict)
    force: bool = False
    gate: str = "off"
    gate_source: str = "suggestion"
    gate_layer: int | None = None
    gate_fpr: float | None = 0.01
    family_strengths: dict[str, tuple[float, ...]] = field(default_factory=dict)
    learn: LearnConfig = field(default_factory=LearnConfig)

    def __post_init__(self) -> None:
        if not self.methods and not self.vector_files:
            raise ValueError("a sweep needs --method or --vector")
        if not self.layers or not self.strengths or not self.positions:
            raise ValueError("a sweep needs at least one layer, strength and positions rule")
        if self.k_batch < 1 or self.batch_size < 1:
            raise ValueError("k_batch and batch_size must be >= 1")
        for method in self.method_specs:
            resolve_method(method)
        object.__setattr__(self, "family_strengths",
                           {str(k): tuple(float(x) for x in v) for k, v in dict(self.family_strengths).items()})
        for name, grid in self.family_strengths.items():
            family(name)  # a ValueError naming the known families
            if not grid or not all(math.isfinite(x) for x in grid):
                raise ValueError(f"family {name!r}: strengths must be finite numbers, at least one")
        if self.gate_source not in GATE_SOURCES:
            raise ValueError(f"unknown gate source {self.gate_source!r}: choose from {', '.join(GATE_SOURCES)}")
        if self.gate_fpr is not None and not 0 < self.gate_fpr < 1:
            raise ValueError(f"gate_fpr {self.gate_fpr} must be between 0 and 1")
        if self.gate_layer is not None and self.gate_layer > min(self.layers):
            raise ValueError(f"gate_layer {self.gate_layer} reads after the first steered layer {min(self.layers)}")
        if self.gate not in GATE_CHOICES:
            raise ValueError(f"unknown gate setting {self.gate!r}: choose from {', '.join(GATE_CHOICES)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown steering mode {self.mode!r}: choose from {', '.join(MODES)}")
        unknown = [p for p in self.positions if p not in POSITIONS]
        if unknown:
            raise ValueError(f"unknown positions {unknown[0]!r}: choose from {', '.join(POSITIONS)}")
        if not all(math.isfinite(s) for s in self.strengths) or not math.isfinite(self.budget):
            raise ValueError("strengths and budget must be finite numbers")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction {self.test_fraction} must be between 0 and 1")

    @property
    def split(self) -> PairSplit:
        return PairSplit(self.split_seed, self.test_fraction)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["test"] = self.test.to_dict()
        d["learn"] = self.learn.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}  # a sweep.json's "scorer" (gone) is ignored
        for name in ("methods", "vector_files", "layers", "strengths", "positions"):
            if name in known:
                known[name] = tuple(known[name])
        if "test" in known:
            known["test"] = TestSetConfig.from_dict(known["test"])
        if "learn" in known:
            known["learn"] = LearnConfig.from_dict(known["learn"])
        grids = dict(d.get("family_strengths") or {})
        for old, name in (("learned_strengths", "learned"), ("heads_strengths", "heads")):  # sweeps before 2026-12
            if old in d and name not in grids:
                grids[name] = tuple(d[old])
        known["family_strengths"] = grids
        return cls(**known)

    @property
    def method_specs(self) -> tuple[str, ...]:
        """Every method the sweep measures: `methods`, then each `vector_files` entry as `file:PATH`."""
        return (*self.methods, *(f"file:{path}" for path in self.vector_files))

    def strengths_for(self, family: Family) -> tuple[float, ...]:
        """The strength grid of a method family: the config's, else the family's default, else `strengths`."""
        return self.family_strengths.get(family.name) or family.strengths or self.strengths

    def fingerprint(self, model_hash: str, test: TestSet) -> str:
        """What the cells' values depend on besides the cell key and the vector."""
        parts = [model_hash, test.digest(), self.split.to_dict(), self.n_train, self.seed, self.gen_prompts,
                 self.gen_tokens, SCORER, METRICS_VERSION]
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


#: `--quick`: a few cells for the demo, always-on and probe-gated, with a small learned vector (a few minutes on 2
#: CPU cores).
QUICK = SweepConfig(
    methods=("caa", "user_minus_third_party", "learned"), layers=(12,), strengths=(-16.0, -8.0, 8.0),
    positions=("generated",),
    test=TestSetConfig(n_answer=8, n_are_you_sure=2, n_mimicry=2, n_feedback=0, n_capability=4), n_train=24,
    gen_prompts=2, gen_tokens=12, gate="both", family_strengths={"learned": (-1.0, -0.5)},
    learn=LearnConfig(n_pairs=40, steps=30, groups_per_step=8),
)


def sweep_strengths(config: SweepConfig, family: Family | None = None) -> list[float]:
    """A family's configured strengths plus 0 (the unsteered anchor of every curve: free, it is the baseline).

    Example:
        >>> from steering.methods.registry import family
        >>> sweep_strengths(SweepConfig(strengths=(-2.0, 2.0)), family("statistics"))
        [-2.0, 0.0, 2.0]
        >>> sweep_strengths(SweepConfig(family_strengths={"learned": (-1.0,)}), family("learned"))
        [-1.0, 0.0]
    """
    grid = config.strengths if family is None else config.strengths_for(family)
    return sorted({float(s) for s in grid} | {0.0})
