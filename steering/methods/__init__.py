"""The one registry of vector methods (`registry`): every way the workbench makes a steering vector.

A new vector method is one entry in `steering/methods/registry.py` (and, for a new family, one module here).

| module                      | family       | holds                                                           |
| --------------------------- | ------------ | --------------------------------------------------------------- |
| `registry`                  | all          | `resolve_method`, `build_method_vector`, `FAMILIES`              |
| `statistics`                | statistics   | labelled activations -> a `probes` estimator -> a vector         |
| `from_probe`                | statistics   | a `probes` Direction (already fitted) as a single-layer vector   |
| `learned`, `learned_data`   | learned      | a vector optimised through the frozen model on the train split   |
| `heads`, `head_grads`       | heads        | rank attention heads, build an ITI-style shift                   |
| `head_steer`, `head_fold`   | heads        | head-level interventions on `hook_z`, and their folded checkpoint |
| `gates`                     | (gate)       | a probe gate's training examples, activations and decisions      |

Example:
    >>> from steering.methods import resolve_method
    >>> resolve_method("caa").family
    'statistics'
"""

from steering.methods.registry import (
    DEFAULT_HEADS_K,
    FAMILIES,
    FAMILY_STRENGTHS,
    Method,
    build_method_vector,
    load_or_build_method_vector,
    resolve_method,
    train_pairs,
    vector_family,
)

__all__ = [
    "build_method_vector",
    "load_or_build_method_vector",
    "resolve_method",
    "train_pairs",
    "vector_family",
    "DEFAULT_HEADS_K",
    "FAMILIES",
    "FAMILY_STRENGTHS",
    "Method",
]
