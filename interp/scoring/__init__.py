"""Scoring answer choices by log-probability, and a model's sycophancy profile from the scores.

One scorer runs in production: `frozen.score_choices_cached`. `reference` keeps the plain
computation it must equal, for the tests only.

| module      | holds                                                                                        |
| ----------- | -------------------------------------------------------------------------------------------- |
| `frozen`    | THE scorer: each context runs once (frozen-prefix KV), `score_choices_cached`, `frozen_prefix` |
| `choices`   | how a choice is tokenised after its context (`scoring_prefix`) and the scores table           |
| `profile`   | per-example scores -> metrics with grouped CIs (`TASK_SPECS`)                                 |
| `reference` | the plain scorer (one full sequence per choice): only the tests (and bench) compare with it   |

Example:
    >>> from interp.scoring import frozen_prefix, score_choices_cached
    >>> scores = score_choices_cached(model, examples, frozen=frozen_prefix(model, examples, lengths))  # doctest: +SKIP
"""

from interp.scoring.choices import RowContext, choice_table, scoring_prefix
from interp.scoring.frozen import CachedScores, FrozenPrefix, frozen_prefix, score_choices_cached
from interp.scoring.profile import (
    TASK_SPECS,
    Effect,
    TaskSpec,
    choice_matrix,
    per_example,
    profile_table,
    sycophancy_profile,
)

__all__ = [
    "choice_matrix",
    "choice_table",
    "frozen_prefix",
    "per_example",
    "profile_table",
    "score_choices_cached",
    "scoring_prefix",
    "sycophancy_profile",
    "CachedScores",
    "Effect",
    "FrozenPrefix",
    "RowContext",
    "TASK_SPECS",
    "TaskSpec",
]
