"""The one registry of vector methods (`registry`): every way the workbench makes a steering vector.

A new family is one module in `families/` (a `family.Family` subclass) and one line in `registry.FAMILIES`.

| module                      | family       | holds                                                           |
| --------------------------- | ------------ | --------------------------------------------------------------- |
| `registry`                  | all          | `FAMILIES` (the table), `resolve_method`, `build_method_vector`  |
| `family`                    | all          | `Family` (what a family implements), `Method`, `BuildRequest`    |
| `families/`                 | each         | one module per family: its names, training pairs, build          |
| `statistics`                | statistics   | labelled activations -> a `probes` estimator -> a vector         |
| `from_probe`                | statistics   | a `probes` Direction (already fitted) as a single-layer vector   |
| `learned`, `learned_data`   | learned      | a vector optimised through the frozen model on the train split   |
| `learned_objective`         | learned-style | what learned steering removes and keeps, the loss of one pass   |
| `learned_params`            | learned-style | what the one training loop trains (a parametrisation)           |
| `lowrank_learned`           | lowrank      | a low-rank edit `h + R^T (W h + b - R h)` trained by that loop   |
| `learned_gate`              | selfgated    | a vector and its gate learned together                           |
| `heads`, `head_grads`       | heads        | rank attention heads, build an ITI-style shift                   |
| `head_steer`, `head_fold`   | heads        | head-level interventions on `hook_z`, and their folded checkpoint |
| `gates`                     | (gate)       | a probe gate's training examples, activations and decisions      |

Example:
    >>> from steering.methods import resolve_method
    >>> resolve_method("caa").family
    'statistics'
"""

from typing import TYPE_CHECKING

from interp.lazy_names import lazy_names

if TYPE_CHECKING:
    from steering.methods.family import BuildRequest, Family, Method, method_file_stem
    from steering.methods.registry import (
        FAMILIES,
        build_method_vector,
        family,
        load_or_build_method_vector,
        resolve_method,
        same_build,
        train_pairs,
        vector_family,
    )

# loaded on first use: importing one method module (e.g. `steering.methods.statistics`) must not import every family
_LAZY = {
    **dict.fromkeys(("BuildRequest", "Family", "Method", "method_file_stem"), "steering.methods.family"),
    **dict.fromkeys(("FAMILIES", "build_method_vector", "family", "load_or_build_method_vector", "resolve_method",
                     "same_build", "train_pairs", "vector_family"), "steering.methods.registry"),
}

__all__ = [
    "build_method_vector",
    "family",
    "load_or_build_method_vector",
    "method_file_stem",
    "resolve_method",
    "same_build",
    "train_pairs",
    "vector_family",
    "BuildRequest",
    "FAMILIES",
    "Family",
    "Method",
]

__getattr__ = lazy_names(__name__, _LAZY)
