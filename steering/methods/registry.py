"""The one registry of vector methods: every way the workbench makes a steering vector, in three families.

| family       | methods                                               | how                                                  | module |
| ------------ | ----------------------------------------------------- | ---------------------------------------------------- | ------ |
| `statistics` | `caa`, `user_minus_third_party`, `opinion_minus_neutral`, `<probe>[:<source>]` | an estimator on cached activations | `steering.methods.statistics` |
| `learned`    | `learned[:<target>][@<positions>][/<task>+<task>]`, targets `correct`, `known`, `neutral`, `third_party`; the tasks it trains on (default: the sweep's `--learn-tasks`) | gradient descent through the model | `steering.methods.learned` |
| `heads`      | `heads[@k]`                                           | ITI-style mass-mean shift of the top-k heads of each layer, ranked on the train split by attribution | `steering.methods.heads` |

Add a method here: a name pattern in `resolve_method`, and a builder that
returns a `SteeringVector` (one direction per requested layer, pointing toward
sycophancy: negative strengths steer away) built from the TRAIN side of the
split only, plus the training pairs it read (checked disjoint from the test set
by the sweep). Each family brings its own default strength grid: a mean
difference is measured in class separations, a learned vector is trained at
strength -1, a head shift at -1 is each head's full mass-mean shift.

Example:
    >>> resolve_method("learned").name, resolve_method("learned:neutral@all").options["positions"]
    ('learned:correct', 'all')
    >>> resolve_method("learned:known/mimicry+feedback").options["tasks"]
    ('mimicry', 'feedback')
    >>> resolve_method("heads@4").family, resolve_method("caa").family
    ('heads', 'statistics')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from interp.models.loading import ChatModel
from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.splits import PairSplit, pairs_hash
from steering.methods.learned import TARGETS, LearnConfig, learn_vector
from steering.methods.learned_data import ROLES, learning_groups
from steering.methods.statistics import build_vector, training_examples
from steering.methods.statistics import resolve_method as resolve_statistics

FAMILIES = ("statistics", "learned", "heads")
#: default strengths per family (the statistics family uses the sweep's `strengths`)
FAMILY_STRENGTHS: dict[str, tuple[float, ...]] = {
    "learned": (-2.0, -1.5, -1.0, -0.5, 0.5),
    "heads": (-8.0, -4.0, -2.0, -1.0, 1.0),
}
DEFAULT_HEADS_K = 4


@dataclass(frozen=True)
class Method:
    """A resolved vector method: its canonical name, family and options."""

    name: str
    family: str
    description: str
    options: dict[str, Any] = field(default_factory=dict)


def resolve_method(spec: str) -> Method:
    """The method a name stands for (see the module table); raises ValueError naming the known ones."""
    spec = spec.strip()
    base, _, suffix = spec.partition("@")
    if base == "learned" or base.startswith("learned:") or base.startswith("learned/"):
        head, slash, task_list = spec.partition("/")
        base, _, suffix = head.partition("@")
        target = base.partition(":")[2] or "correct"
        if target not in TARGETS:
            raise ValueError(f"method {spec!r}: unknown target {target!r}; choose from {', '.join(TARGETS)}")
        positions = suffix or "generated"
        LearnConfig(target=target, positions=positions)  # validates
        tasks = tuple(t for t in task_list.split("+") if t) if task_list else ()
        unknown = [t for t in tasks if t not in ROLES]
        if unknown or (slash and not tasks):
            raise ValueError(f"method {spec!r}: unknown training task {(unknown or [task_list])[0]!r}; "
                             f"choose from {', '.join(ROLES)}")
        name = (f"learned:{target}" + (f"@{positions}" if positions != "generated" else "")
                + (f"/{'+'.join(tasks)}" if tasks else ""))
        trained = f", trained on {', '.join(tasks)}" if tasks else ""
        return Method(name, "learned", f"vector learned by gradient descent, target {target}, positions "
                      f"{positions}{trained}", {"target": target, "positions": positions, "tasks": tasks})
    if base == "heads":
        try:
            k = int(suffix) if suffix else DEFAULT_HEADS_K
        except ValueError:
            raise ValueError(f"method {spec!r}: heads@K takes an integer K") from None
        if k < 1:
            raise ValueError(f"method {spec!r}: K must be >= 1")
        return Method(f"heads@{k}", "heads", f"mass-mean shift of the top {k} heads of the steered layer "
                      "(ranked by attribution on the train split), as a hook_attn_out vector", {"k": k})
    try:
        resolved = resolve_statistics(spec)
    except ValueError as e:
        raise ValueError(f"{e}; also learned[:{'|'.join(TARGETS)}][@positions] and heads[@K]") from None
    return Method(resolved.name, "statistics", resolved.description,
                  {"estimator": resolved.estimator, "label_source": resolved.label_source})


def method_file_stem(name: str) -> str:
    """A method name as a file or folder name.

    Example:
        >>> method_file_stem("learned:known@all/answer+mimicry")
        'learned-known-all-answer-mimicry'
    """
    for char in ":@/+":
        name = name.replace(char, "-")
    return name


def learn_config(method: Method, learn: LearnConfig | None, layer: int, seed: int,
                 n_pairs: int | None) -> LearnConfig:
    """The settings a learned method trains one layer with: the sweep's base, the method's target,
    positions and (when it names them) tasks."""
    base = learn or LearnConfig()
    tasks = method.options.get("tasks") or base.tasks
    return dataclasses.replace(base, layers=(int(layer),), target=method.options["target"],
                               positions=method.options["positions"], tasks=tasks, seed=seed,
                               n_pairs=n_pairs or base.n_pairs)


def train_pairs(method: Method, split: PairSplit, n_pairs: int | None, seed: int,
                learn: LearnConfig | None = None) -> set[str]:
    """The pair ids the method reads to build its vector (all on the train side of `split`)."""
    if method.family == "learned":
        c = learn_config(method, learn, 0, seed, n_pairs)
        train, val = learning_groups(split, c.tasks, c.n_pairs, seed, c.wording, c.exclude_categories,
                                     c.val_fraction)
        return {g.pair_id for g in (*train, *val)}
    if method.family == "heads":
        from steering.methods.heads import head_examples

        return {ex.pair_id for ex in head_examples(split, n_pairs, seed)}
    return {ex.pair_id for ex in training_examples(resolve_statistics(method.name), split, n_pairs, seed)}


def _combine(parts: Sequence[SteeringVector], name: str, meta: dict[str, Any]) -> SteeringVector:
    """One vector holding each part's (single-layer) direction; per-layer metas kept under `meta["layers"]`."""
    directions = {layer: part.directions[layer] for part in parts for layer in part.layers}
    resid = {layer: part.resid_norms.get(layer, float("nan")) for part in parts for layer in part.layers}
    first = parts[0]
    return dataclasses.replace(first, directions=directions, resid_norms=resid, method=name,
                               meta={**meta, "layers": {str(p.layers[0]): p.meta for p in parts}})


def build_method_vector(
    model: ChatModel, method: Method, split: PairSplit, layers: Sequence[int], folder: Path,
    n_pairs: int | None = 64, seed: int = 0, reuse: Sequence[Path] = (), learn: LearnConfig | None = None,
) -> SteeringVector:
    """Build the method's vector for `layers` from the train side of `split`.

    Learned and head vectors are built one layer at a time (a sweep cell steers one layer), so the
    direction at layer L is what that family makes when it may use layer L alone.

    Args:
        model: the model.
        method: from `resolve_method`.
        split: the pair split.
        layers: layers to build.
        folder: working folder (activation stores, training checkpoints, head rankings).
        n_pairs: training pairs (answer questions for learned vectors).
        seed: data and subset seed.
        reuse: activation stores to reuse (statistics family).
        learn: base settings of a learned vector (its layers, positions and target are the method's).
    """
    if method.family == "statistics":
        return build_vector(model, method.name, split, layers, folder, n_pairs, seed, reuse)
    if method.family == "learned":
        parts = []
        for layer in layers:
            config = learn_config(method, learn, layer, seed, n_pairs)
            with tqdm(total=config.steps, desc=f"learn {method.name} L{layer}", unit="step", leave=False) as bar:
                def shown(step: int, entry: dict[str, float], bar: tqdm = bar) -> None:
                    bar.update(step - bar.n)
                    bar.set_postfix({k: f"{v:.3f}" for k, v in entry.items() if k in ("loss", "val_loss")})

                parts.append(learn_vector(model, split, config, folder / "learned" / method_file_stem(method.name) /
                                          f"layer{layer}", progress=shown))
        return _combine(parts, method.name, {"family": "learned", "split": split.to_dict(), "seed": seed,
                                             "train_pairs_hash": parts[0].meta["train_pairs_hash"]})
    from steering.methods.heads import HeadRanking, head_shift_vector, rank_heads

    path = folder / "heads" / f"ranking-{seed}.safetensors"
    ranking = HeadRanking.load(path) if path.is_file() else None
    expected = pairs_hash(sorted(train_pairs(method, split, n_pairs, seed)))
    if ranking is None or ranking.meta.get("train_pairs_hash") != expected or \
            ranking.meta.get("model_hash") != model.weights_hash:
        ranking = rank_heads(model, split, n_pairs, seed)
        ranking.save(path)
    parts = [head_shift_vector(model, ranking, k=method.options["k"], layers=[int(layer)]) for layer in layers]
    empty = [layer for layer, part in zip(layers, parts, strict=True) if not part.layers]
    if empty:
        raise ValueError(f"method {method.name}: no head of layer {empty[0]} has a positive attribution")
    return _combine(parts, method.name, {"family": "heads", "split": split.to_dict(), "seed": seed,
                                         "train_pairs_hash": expected, "k": method.options["k"]})


def same_build(old: SteeringVector, method: Method, model: ChatModel, split: PairSplit, layers: Sequence[int],
               expected_pairs: str, seed: int, learn: LearnConfig | None = None) -> bool:
    """Whether a saved vector was built the way `build_method_vector` would build it now."""
    if old.method != method.name or old.model_hash != model.weights_hash or not set(layers) <= set(old.layers):
        return False
    if old.meta.get("split") != split.to_dict() or old.meta.get("seed") != seed:
        return False
    if old.meta.get("train_pairs_hash") != expected_pairs:
        return False
    if method.family == "learned":
        for layer in layers:
            trained = old.meta.get("layers", {}).get(str(layer), {}).get("learned", {})
            want = learn_config(method, learn, layer, seed, None).to_dict()
            ignore = {"layers", "seed", "n_pairs"}  # the layer is checked above; seed and pairs by the pairs hash
            if {k: (list(v) if isinstance(v, tuple) else v) for k, v in want.items() if k not in ignore} != \
                    {k: v for k, v in trained.items() if k not in ignore}:
                return False
    return bool(np.all([np.isfinite(old.directions[layer]).all() for layer in layers]))


def load_or_build_method_vector(
    path: Path, model: ChatModel, method: Method, split: PairSplit, layers: Sequence[int], folder: Path,
    n_pairs: int | None, seed: int, reuse: Sequence[Path] = (), learn: LearnConfig | None = None,
) -> SteeringVector:
    """The vector saved at `path` if it was built the same way, else build it and save it (atomically).

    Example:
        >>> v = load_or_build_method_vector(Path("v.safetensors"), model, resolve_method("learned"), split, [12],
        ...                                 Path("work"), 64, 0)  # doctest: +SKIP
    """
    if method.family == "statistics":
        from steering.methods.statistics import load_or_build_vector

        return load_or_build_vector(path, model, method.name, split, layers, folder, n_pairs, seed, reuse)
    if path.is_file():
        old = SteeringVector.load(path)
        expected = pairs_hash(sorted(train_pairs(method, split, n_pairs, seed, learn)))
        if same_build(old, method, model, split, layers, expected, seed, learn):
            return old
    vector = build_method_vector(model, method, split, layers, folder, n_pairs, seed, reuse, learn)
    vector.save(path)
    return vector


def vector_family(vector: SteeringVector) -> str:
    """The family a saved vector came from (its strength grid in a sweep): from its meta or method name.

    Example:
        >>> vector_family(SteeringVector({0: np.ones(2, np.float32)}, method="learned:correct", d_model=2))
        'learned'
    """
    family = vector.meta.get("family")
    if family in FAMILIES:
        return str(family)
    head = vector.method.split(":")[0].split("@")[0]
    return "heads" if head.startswith("heads") else "learned" if head == "learned" else "statistics"
