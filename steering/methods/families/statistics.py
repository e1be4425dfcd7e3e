"""The statistics family: an estimator on labelled activations of the train split (`steering.methods.statistics`).

Example:
    >>> FAMILY.parse("lda:contrast").options
    {'estimator': 'lda', 'label_source': 'contrast'}
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from steering.artifacts.steering_vector import SteeringVector
from steering.methods.family import BuildRequest, Family, Method
from steering.methods.statistics import (
    build_vector,
    resolve_method,
    shared_stores,
    training_examples,
)


class Statistics(Family):
    """Mean differences and probe directions (`caa`, `user_minus_third_party`, `<probe>[:<source>]`)."""

    name = "statistics"
    scale = "class separations along the method's axis"

    def parse(self, spec: str) -> Method | None:
        resolved = resolve_method(spec)  # the catch-all family: an unknown name is an error here
        return Method(resolved.name, self.name, resolved.description,
                      {"estimator": resolved.estimator, "label_source": resolved.label_source})

    def train_pairs(self, method: Method, request: BuildRequest) -> set[str]:
        examples = training_examples(resolve_method(method.name), request.split, request.n_pairs, request.seed)
        return {ex.pair_id for ex in examples}

    def build(self, method: Method, request: BuildRequest) -> SteeringVector:
        return build_vector(request.model, method.name, request.split, request.layers, request.folder,
                            request.n_pairs, request.seed, request.reuse)

    def prepare(self, methods: Sequence[Method], request: BuildRequest) -> tuple[Path, ...]:
        """One capture per task serves every statistics method on it."""
        return tuple(shared_stores(request.model, [m.name for m in methods], request.split, request.layers,
                                   request.folder, request.n_pairs, request.seed))


FAMILY = Statistics()
