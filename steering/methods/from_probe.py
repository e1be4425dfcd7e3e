"""A probe `Direction` as a `SteeringVector`: the raw vector at its layer, with its provenance.

A Direction's raw vector is in residual-stream units (its norm is the
separation of the class means along it), so it steers as is: strength 1 adds
one class-mean separation. It points from the negative to the positive class
of its label source (e.g. baseline -> the user's opinion), so a negative
strength steers away from the positive class.

Example:
    >>> import numpy as np
    >>> from probes.direction import Direction
    >>> d = Direction(np.array([3.0, 4.0]), 2, "blocks.2.hook_resid_post", "last_prompt", "mean_diff",
    ...               "pressure", resid_norm=50.0)
    >>> v = vector_from_direction(d)
    >>> v.layers, v.norms()[2], v.relative_norms()[2]
    ([2], 5.0, 0.1)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from probes.direction import Direction
from steering.apply.interventions import STEERABLE_KINDS
from steering.artifacts.steering_vector import SteeringVector


def vector_from_direction(direction: Direction, arch: str = "") -> SteeringVector:
    """One probe direction -> a single-layer SteeringVector at the direction's site.

    Args:
        direction: a fitted probe direction (`probes.load_directions`).
        arch: the model's HF `model_type`, when known (recorded on the vector).

    Raises:
        ValueError: for a direction read at a site `steer` cannot act on (e.g. `attn.hook_z`).

    Example:
        >>> v = vector_from_direction(dirs["pressure/logreg/last_prompt/blocks.3.hook_resid_post"])  # doctest: +SKIP
    """
    kind = direction.site.split(".", 2)[-1]
    if kind not in STEERABLE_KINDS or direction.layer < 0:
        raise ValueError(f"direction {direction.key!r}: steering acts on blocks.L.{{{', '.join(STEERABLE_KINDS)}}}, "
                         f"not on {direction.site!r}")
    layer = direction.layer
    norms = {layer: float(direction.resid_norm)} if direction.resid_norm else {}
    return SteeringVector(
        directions={layer: np.array(direction.vector, dtype=np.float32)},  # a writable copy
        method=direction.method,
        d_model=direction.d_model,
        site_kind=kind,
        model_hash=direction.model_hash,
        arch=arch,
        dataset_hash=direction.dataset_hash,
        resid_norms=norms,
        positions="all",
        meta={"source": "probe", "direction": direction.key, "label_source": direction.label_source,
              "read_at": direction.position, "class_means": list(direction.class_means)},
    )


def vector_from_directions(directions: Mapping[str, Direction], arch: str = "") -> SteeringVector:
    """Several single-layer directions (one per layer, e.g. one method across layers) -> one vector.

    Raises:
        ValueError: for two directions at one layer, or directions of different widths or site kinds.

    Example:
        >>> dirs = load_directions("artifacts/demo/probes/directions.safetensors")  # doctest: +SKIP
        >>> v = vector_from_directions({k: d for k, d in dirs.items() if k.startswith("pressure/logreg/last_prompt/")})  # doctest: +SKIP
    """
    if not directions:
        raise ValueError("no directions given")
    parts = [vector_from_direction(d, arch) for d in directions.values()]
    layers = [p.layers[0] for p in parts]
    if len(set(layers)) != len(layers):
        raise ValueError(f"several directions at one layer ({sorted(layers)}): pick one per layer")
    if len({p.site_kind for p in parts}) != 1:
        raise ValueError("directions at different site kinds cannot share a vector")
    first = parts[0]
    merged: dict[int, np.ndarray] = {}
    norms: dict[int, float] = {}
    for part in parts:
        merged.update(part.directions)
        norms.update(part.resid_norms)
    return SteeringVector(
        directions=merged, method=first.method, d_model=first.d_model, site_kind=first.site_kind,
        model_hash=first.model_hash, arch=arch, dataset_hash=first.dataset_hash, resid_norms=norms,
        positions="all", meta={"source": "probe", "directions": sorted(directions)},
    )
