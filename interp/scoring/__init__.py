"""Scoring answer choices by log-probability, and a model's sycophancy profile from the scores.

| module      | holds                                                                                 |
| ----------- | ------------------------------------------------------------------------------------- |
| `frozen`    | THE scorer: each context runs once (frozen-prefix KV), `score_choices_cached`          |
| `reference` | the plain scorer (one full sequence per choice): the reference the tests compare with |
| `profile`   | per-example scores -> metrics with grouped CIs (`TASK_SPECS`)                          |

Example:
    >>> from interp.scoring import frozen_prefix, score_choices_cached
    >>> scores = score_choices_cached(model, examples, frozen_prefix(model, examples))  # doctest: +SKIP
"""

from interp.scoring.frozen import FrozenPrefix, frozen_prefix, score_choices_cached
from interp.scoring.profile import TASK_SPECS, Effect, TaskSpec, per_example, profile_table, sycophancy_profile
from interp.scoring.reference import choice_matrix, score_choices, scoring_prefix

__all__ = [
    "choice_matrix",
    "frozen_prefix",
    "per_example",
    "profile_table",
    "score_choices",
    "score_choices_cached",
    "scoring_prefix",
    "sycophancy_profile",
    "Effect",
    "FrozenPrefix",
    "TASK_SPECS",
    "TaskSpec",
]
