"""Build steering vectors from a TRAINING split of pair ids: a registry of methods.

Every method is an estimator (`probes.fitting.fit_direction`) applied to labelled activations at the
position of its label source (`probes.labels`, the one registry of label sources); steering picks the
examples and captures their activations, probes fit:

| method                   | estimator | label source (positive vs negative)             | position      |
| ------------------------ | --------- | ----------------------------------------------- | ------------- |
| `caa`                    | means     | `contrast`: CAA completion sycophantic vs honest | `answer`      |
| `opinion_minus_neutral`  | means     | `pressure`: user_wrong vs neutral (naive)       | `last_prompt` |
| `user_minus_third_party` | means     | `user_vs_third_party`: user_wrong vs third_party_wrong | `last_prompt` |
| `logreg`, `mean_diff`, `lda`, `pca_diff` | probes.PROBES | `<probe>:<source>`, default `user_vs_third_party` | the source's |

`caa` uses the project's own A/B items built on the fact bank (`interp.tasks.caa`),
with training pairs balanced over the letter of the sycophantic answer (STRATA).

Scale, so strengths compare across methods: `means` vectors are the raw
difference of class means (residual units). A probe's vector is its
`direction_`: the unit probe axis times the distance between the two class
means projected on it (for `mean_diff` exactly the means difference). So for
every method, strength 1 moves the residual by the training classes'
separation along the method's axis. Every vector points toward the positive
class (the sycophantic completion, the user's opinion): negative strengths
steer away from sycophancy.

Activations come from `interp.capture.collect` at `blocks.*.hook_resid_post`; an
existing store holding exactly these training examples is reused.

Example:
    >>> split = PairSplit(seed=0, test_fraction=0.3)  # doctest: +SKIP
    >>> v = build_vector(model, "caa", split, layers=[6, 10], folder="artifacts/x/sweep/activations")  # doctest: +SKIP
    >>> v.meta["train_pairs_hash"][:8], v.norms()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interp.capture.collect import capture, examples_hash
from interp.models.loading import ChatModel
from interp.store.activations import ActivationStore, read_manifest
from interp.tasks import build_task
from interp.tasks.example import Example
from interp.tasks.sampling import select, task_rng
from probes.estimators import PROBES
from probes.fitting import fit_direction, store_features
from probes.labels import CONDITION_SOURCES, LABEL_SOURCES, ConditionSource
from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.splits import PairSplit, pairs_hash

if TYPE_CHECKING:
    from steering.artifacts.steerable import Steerable

SITE_KIND = "hook_resid_post"
DEFAULT_PROBE_SOURCE = "user_vs_third_party"


#: the label sources a vector can train on: the single-task condition sources of `probes.labels`
VECTOR_SOURCES = tuple(name for name, source in CONDITION_SOURCES.items() if len(source.tasks) == 1)

SCALES = {
    "means": "mean(positive) - mean(negative) in residual units",
    "probe": "unit probe axis x distance between the class means projected on it (probe.direction_)",
}


@dataclass(frozen=True)
class VectorMethod:
    """A named way to build a vector: an estimator on a label source."""

    name: str
    estimator: str
    label_source: str
    description: str

    @property
    def data(self) -> ConditionSource:
        """The label source (task, positive, negative, position) in `probes.labels`, the one registry."""
        return CONDITION_SOURCES[self.label_source]


VECTOR_METHODS: dict[str, VectorMethod] = {
    "caa": VectorMethod("caa", "means", "contrast",
                        "CAA: mean activation at the answer letter, sycophantic minus honest completion"),
    "opinion_minus_neutral": VectorMethod("opinion_minus_neutral", "means", "pressure",
                                          "naive: user states a wrong answer minus the neutral question"),
    "user_minus_third_party": VectorMethod("user_minus_third_party", "means", "user_vs_third_party",
                                           "deference-specific: the user's wrong answer minus a third party's"),
}


def resolve_method(spec: str) -> VectorMethod:
    """A registered method, or a probe method `<probe>[:<label source>]`.

    Example:
        >>> resolve_method("logreg").name, resolve_method("lda:contrast").label_source
        ('logreg:user_vs_third_party', 'contrast')
    """
    spec = spec.strip()
    if spec in VECTOR_METHODS:
        return VECTOR_METHODS[spec]
    probe, _, source = spec.partition(":")
    source = source or DEFAULT_PROBE_SOURCE
    if probe not in PROBES:
        known = [*VECTOR_METHODS, *(f"{p}[:source]" for p in PROBES)]
        raise ValueError(f"unknown vector method {spec!r}; known: {', '.join(known)}")
    if source not in VECTOR_SOURCES:
        raise ValueError(f"method {spec!r}: label source {source!r} unknown; choose from {', '.join(VECTOR_SOURCES)}")
    return VectorMethod(f"{probe}:{source}", probe, source, f"probe {probe} trained on label source {source}")


def _letter(example: Example) -> str:
    return str(example.sycophantic)


#: label source -> the stratum training pairs are balanced over. CAA items put the sycophantic answer
#: under (A) or (B); at the `answer` position the two completions differ by that letter token, so a mean
#: difference over pairs with more (A) than (B) is dominated by the letter's identity (measured on
#: SmolLM2: norm 32 instead of ~4 with 16 vs 8 pairs). Equal counts cancel it.
STRATA: dict[str, Callable[[Example], str]] = {"contrast": _letter}


def training_examples(method: VectorMethod, split: PairSplit, n_pairs: int | None, seed: int) -> list[Example]:
    """The method's labelled examples on the TRAIN side of `split` (at most `n_pairs` pairs, seeded).

    Pairs are balanced over the label source's stratum (STRATA) when it has one: n_pairs // 2
    of each letter for `contrast` (or as many as the rarer letter has).

    Example:
        >>> exs = training_examples(VECTOR_METHODS["caa"], PairSplit(0, 0.3), n_pairs=4, seed=0)
        >>> len(exs), {e.condition for e in exs} == {"sycophantic", "honest"}
        (8, True)
        >>> sorted(e.sycophantic for e in exs if e.condition == "honest")
        [0, 0, 1, 1]
    """
    data = method.data
    pool = [ex for ex in build_task(data.task, n=None, seed=seed)
            if ex.condition in data.conditions and not split.is_test(ex.pair_id)]
    pairs = list(dict.fromkeys(ex.pair_id for ex in pool))
    rng = task_rng(f"steering-train-{data.task}", seed)  # salted by task: methods on one task share their pairs
    stratum = STRATA.get(method.label_source)
    if stratum is not None:
        of = {ex.pair_id: stratum(ex) for ex in pool}
        groups = [[p for p in pairs if of[p] == key] for key in sorted(set(of.values()))]
        per = min(min(len(g) for g in groups), (n_pairs or len(pairs)) // len(groups))
        keep = {p for g in groups for p in select(g, per, rng)}
        pairs = [p for p in pairs if p in keep]
    elif n_pairs is not None and n_pairs < len(pairs):
        pairs = select(pairs, n_pairs, rng)
    chosen = set(pairs)
    return [ex for ex in pool if ex.pair_id in chosen]


def _store_rows(path: Path, examples: list[Example], position: str, layers: Sequence[int],
                model_hash: str) -> ActivationStore | None:
    """The store at `path` if it holds every example (equal records), the position and the layers."""
    manifest = read_manifest(path)
    if manifest is None or not manifest.get("complete"):
        return None
    if manifest.get("model", {}).get("weights_hash") != model_hash or position not in manifest["positions"]:
        return None
    if any(f"blocks.{layer}.{SITE_KIND}" not in manifest["sites"] for layer in layers):
        return None
    store = ActivationStore(path)
    have = {ex.id: ex for ex in store.examples}
    return store if all(have.get(ex.id) == ex for ex in examples) else None


def training_store(
    model: ChatModel, examples: list[Example], position: str, layers: Sequence[int], folder: Path,
    reuse: Sequence[Path] = (),
) -> ActivationStore:
    """A store holding `examples` at `position` for `layers`: a reused one, else a fresh capture.

    Args:
        model: the model.
        examples: the training examples.
        position: named position to cache.
        layers: layers the vector needs.
        folder: where fresh captures go (one sub-folder per data hash; resumable).
        reuse: stores to look in first (e.g. artifacts/<run>/activations).
    """
    for path in reuse:
        store = _store_rows(Path(path), examples, position, layers, model.weights_hash)
        if store is not None:
            return store
    target = Path(folder) / f"{position}-{examples_hash(examples)[:12]}"
    return capture(model, examples, "blocks.*.hook_resid_post", [position], target)


def shared_stores(
    model: ChatModel, methods: Sequence[str], split: PairSplit, layers: Sequence[int], folder: Path,
    n_pairs: int | None, seed: int,
) -> list[Path]:
    """One capture per (task, position) holding every example the methods on it need.

    `opinion_minus_neutral` and `user_minus_third_party` both read the answer
    task at `last_prompt` on the same training pairs: capturing the union of
    their conditions once lets `training_store` reuse it for both.

    Example:
        >>> paths = shared_stores(model, ["opinion_minus_neutral", "user_minus_third_party"], split, [6], out, 64, 0)  # doctest: +SKIP
    """
    groups: dict[tuple[str, str], dict[str, Example]] = {}
    for method in methods:
        resolved = resolve_method(method)
        key = (resolved.data.task, resolved.data.position)
        for ex in training_examples(resolved, split, n_pairs, seed):
            groups.setdefault(key, {})[ex.id] = ex
    paths = []
    for (_, position), by_id in groups.items():
        examples = sorted(by_id.values(), key=lambda e: e.id)
        paths.append(training_store(model, examples, position, layers, folder).path)
    return paths


def vector_from_store(
    store: ActivationStore, examples: list[Example], method: VectorMethod, layers: Sequence[int],
    split: PairSplit, model: ChatModel, seed: int = 0,
) -> SteeringVector:
    """Fit the method at each layer on the store's rows of `examples` (pure: no model run).

    Args:
        store: holds every example (matched by id).
        examples: the labelled training examples (train side of `split`).
        method: what to fit.
        layers: layers to build.
        split: recorded in the vector's meta.
        model: provenance (width, hash, arch).
        seed: passed to probes that shuffle.
    """
    data = method.data
    labels = LABEL_SOURCES[method.label_source](examples, None)
    if not labels.mask.all():
        raise ValueError(f"method {method.name}: {int((~labels.mask).sum())} training examples carry no label")
    if any(split.is_test(ex.pair_id) for ex in examples):
        raise ValueError(f"method {method.name}: training examples include test-split pairs")
    directions: dict[int, np.ndarray] = {}
    resid_norms: dict[int, float] = {}
    for layer in layers:
        X = store_features(store, examples, f"blocks.{layer}.{SITE_KIND}", data.position)  # [n, d]
        directions[layer] = fit_direction(method.estimator, X, labels.y, labels.groups, seed).astype(np.float32)
        resid_norms[layer] = float(np.linalg.norm(X, axis=1).mean())
    pairs = sorted({ex.pair_id for ex in examples})
    meta: dict[str, Any] = {
        "label_source": method.label_source, "estimator": method.estimator, "task": data.task,
        "position": data.position, "positive": data.positive, "negative": data.negative,
        "description": method.description,
        "scale": SCALES["means" if method.estimator == "means" else "probe"],
        "sign": "points toward the positive class: negative strengths steer away from sycophancy",
        "split": split.to_dict(), "train_pairs_hash": pairs_hash(pairs), "n_train_pairs": len(pairs),
        "balanced_over": "sycophantic letter (A/B)" if method.label_source in STRATA else None,
        "n_positive": int(labels.y.sum()), "n_negative": int((labels.y == 0).sum()),
        "store": str(store.path), "seed": seed,
    }
    return SteeringVector(
        directions, method=method.name, d_model=model.d_model, site_kind=SITE_KIND,
        model_hash=model.weights_hash, arch=model.arch, dataset_hash=examples_hash(examples),
        resid_norms=resid_norms, positions="all", meta=meta,
    )


def build_vector(
    model: ChatModel, method: str, split: PairSplit, layers: Sequence[int], folder: str | Path,
    n_pairs: int | None = 64, seed: int = 0, reuse: Sequence[Path] = (),
) -> SteeringVector:
    """Build one method's vector from the train side of `split`.

    Args:
        model: the model whose activations are read.
        method: a key of VECTOR_METHODS or `<probe>[:<label source>]`.
        split: the train/test split; only train pairs are read.
        layers: layers to build (one direction each).
        folder: where fresh activation stores go.
        n_pairs: training pairs (seeded subset of the train side); None: all.
        seed: task generation and subset seed.
        reuse: existing stores to reuse when they hold the same examples.

    Example:
        >>> v = build_vector(model, "user_minus_third_party", PairSplit(0, 0.3), [10], "out")  # doctest: +SKIP
    """
    resolved = resolve_method(method)
    examples = training_examples(resolved, split, n_pairs, seed)
    if not examples:
        raise ValueError(f"method {method}: no training examples on the train side of the split")
    store = training_store(model, examples, resolved.data.position, layers, Path(folder), reuse)
    return vector_from_store(store, examples, resolved, layers, split, model, seed)


#: positions rules in the order a vector header lists them
POSITION_RULES = ("all", "prompt", "generated")


def with_measured_positions(vector: Steerable, positions: Sequence[str]) -> Steerable:
    """`vector` recording the positions rules a sweep measured it with (added to any recorded before).

    The header's `positions` is what an export writes into its record: "all" once the vector was
    measured at every position, else the rules it was measured with ("generated", "prompt,generated").
    A vector never swept keeps "all" (it was built from activations, not measured as an intervention).

    Example:
        >>> with_measured_positions(vector, ["generated"]).positions  # doctest: +SKIP
        'generated'
    """
    seen = set(vector.meta.get("measured_positions", [])) | set(positions)
    rules = [p for p in POSITION_RULES if p in seen]
    return vector.with_record(positions="all" if "all" in seen else ",".join(rules),
                              meta={**vector.meta, "measured_positions": rules})
