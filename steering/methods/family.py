"""What a family of vector methods is: one object that parses its method names, names its training pairs,
builds its vector and says whether a saved one was built the same way.

The registry (`steering.methods.registry.FAMILIES`) is a table of these objects; nothing outside a family's own
module looks at a family's name to decide what to do. A new family is one module with one `Family` subclass
and one line in that table.

Example:
    >>> class Ones(Family):
    ...     name = "ones"
    ...     def parse(self, spec):
    ...         return Method(spec, self.name, "all ones") if spec == "ones" else None
    >>> Ones().parse("ones").family, Ones().parse("caa")
    ('ones', None)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.splits import PairSplit

if TYPE_CHECKING:
    from interp.models.loading import ChatModel
    from steering.artifacts.probe_gate import ProbeGate
    from steering.artifacts.steerable import Steerable
    from steering.methods.learned import LearnConfig


@dataclass(frozen=True)
class Method:
    """A resolved vector method: its canonical name, family and options."""

    name: str
    family: str
    description: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class BuildRequest:
    """What every family builds from (the TRAIN side of `split` only).

    Args:
        model: the model.
        split: the pair split.
        layers: the layers a sweep steers (a family with layers of its own, e.g. a multi-layer learned vector,
            uses those instead).
        folder: working folder (activation stores, training checkpoints, head rankings).
        n_pairs: training pairs.
        seed: data and subset seed.
        reuse: activation stores to reuse.
        learn: how learned vectors train (their layer, positions, target and tasks come from the method).
        force: accept a vector file made on another model file.
        gates: steered layer -> a gate file that families training through a gate use.
    """

    model: ChatModel
    split: PairSplit
    layers: tuple[int, ...]
    folder: Path
    n_pairs: int | None = 64
    seed: int = 0
    reuse: tuple[Path, ...] = ()
    learn: LearnConfig | None = None
    force: bool = False
    gates: dict[int, Path] = field(default_factory=dict)


class Family:
    """One family of vector methods. Subclasses set `name` and implement `parse` and `build`.

    Attributes:
        name: the family's name (recorded in each vector's meta as "family").
        strengths: its default strength grid in a sweep (None: the sweep's `strengths`).
        scale: what strength 1 means for its vectors (shown in reports).
        always_gated: its vectors are trained through the sweep's gate at their first layer
            (`BuildRequest.gates`) and every cell of theirs is gated (by that gate, or by the family's own gate
            where `cell_gate` gives one).
    """

    name: str = ""
    strengths: tuple[float, ...] | None = None
    scale: str = "multiplier of the raw vector"
    always_gated: bool = False

    def parse(self, spec: str) -> Method | None:
        """The method `spec` names, or None when `spec` is not this family's (ValueError when it is, but is bad)."""
        raise NotImplementedError

    def train_pairs(self, method: Method, request: BuildRequest) -> set[str]:
        """Pair ids the method reads to build its vector (all on the train side; the sweep checks)."""
        return set()

    def build(self, method: Method, request: BuildRequest) -> Steerable:
        """The method's artifact (a vector, or a low-rank edit) for `cell_layers`' layers, built from the train side
        of `request.split`."""
        raise NotImplementedError

    def same_build(self, old: Steerable, method: Method, request: BuildRequest, pairs_hash: str) -> bool:
        """Whether `old` was built as `build` would build it now (method, model, layers, split, seed, pairs).

        Its values are finite: both artifacts refuse NaN and inf when they are made or loaded.
        """
        layers = {layer for group in self.cell_layers(method, request.layers) for layer in group}
        if old.method != method.name or old.model_hash != request.model.weights_hash or not layers <= set(old.layers):
            return False
        if old.meta.get("split") != request.split.to_dict() or old.meta.get("seed") != request.seed:
            return False
        return bool(old.meta.get("train_pairs_hash") == pairs_hash)

    def cell_gate(self, artifact: Steerable, layer: int) -> ProbeGate | None:
        """The gate of this family's gated cells whose first layer is `layer`, when the family brings its own (e.g.
        one trained with the vector); None: the sweep's gate at that layer."""
        return None

    def cell_layers(self, method: Method, layers: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        """The layer groups a sweep steers, one curve each: every layer alone, unless the method names its own."""
        return tuple((int(layer),) for layer in layers)

    def positions(self, method: Method, positions: Sequence[str]) -> tuple[str, ...]:
        """Where the method's cells steer: the sweep's positions unless the method was trained at others."""
        return tuple(positions)

    def prepare(self, methods: Sequence[Method], request: BuildRequest) -> tuple[Path, ...]:
        """Work shared by this family's methods before any is built (e.g. one capture); returns stores to reuse."""
        return ()


def parse_count(spec: str, base: str, default: int) -> int | None:
    """`base[@K]` -> K (an integer >= 1, `default` when absent), None when `spec` is another family's name.

    Example:
        >>> parse_count("heads@3", "heads", 4), parse_count("copyheads", "copyheads", 10), parse_count("caa", "heads", 4)
        (3, 10, None)
    """
    name, _, suffix = spec.strip().partition("@")
    if name != base:
        return None
    try:
        k = int(suffix) if suffix else default
    except ValueError:
        raise ValueError(f"method {spec!r}: {base}@K takes an integer K") from None
    if k < 1:
        raise ValueError(f"method {spec!r}: K must be >= 1")
    return k


def method_file_stem(name: str) -> str:
    """A method name as a file or folder name.

    Example:
        >>> method_file_stem("learned:known@all/answer+mimicry"), method_file_stem("lowrank:correct%2")
        ('learned-known-all-answer-mimicry', 'lowrank-correct-2')
    """
    for char in ":@/+#,=% ":
        name = name.replace(char, "-")
    return name.replace("\\", "-").replace("..", "-")


def combine_layers(parts: Sequence[SteeringVector], name: str, meta: dict[str, Any]) -> SteeringVector:
    """One vector holding each part's (single-layer) direction; per-layer metas kept under `meta["layers"]`.

    Example:
        >>> import numpy as np
        >>> a = SteeringVector({1: np.ones(2, np.float32)}, method="m", d_model=2, meta={"x": 1})
        >>> b = SteeringVector({3: np.zeros(2, np.float32)}, method="m", d_model=2, meta={"x": 2})
        >>> v = combine_layers([a, b], "m", {"family": "toy"})
        >>> v.layers, v.meta["layers"]["3"]
        ([1, 3], {'x': 2})
    """
    directions = {layer: part.directions[layer] for part in parts for layer in part.layers}
    resid = {layer: part.resid_norms.get(layer, float("nan")) for part in parts for layer in part.layers}
    first = parts[0]
    return dataclasses.replace(first, directions=directions, resid_norms=resid, method=name,
                               meta={**meta, "layers": {str(p.layers[0]): p.meta for p in parts}})
