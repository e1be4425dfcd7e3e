"""The train-task x test-task matrix of learned vectors: does a vector trained on one kind of sycophancy reduce others?

Learned methods that name their training tasks (`learned:known/mimicry`,
`steering.methods.registry`) are the rows; the four kinds of the suite are
the columns. A cell is the test task's shift gain (unsteered shift minus
steered shift, > 0: less sycophantic; 95% CI over test pairs) and its flip
rate of known answers, unsteered -> steered, at one strength of the row's
curve (default: the trained strength, -1) and the layer and positions of the
row's first curve. One sweep run holds it:

    workbench sweep --run transfer --layers 12 --learned-strengths=-1 \\
        --method learned:known/answer,learned:known/are_you_sure,learned:known/mimicry,learned:known/feedback

Example:
    >>> matrix = transfer_matrix(read_table(Path("artifacts/transfer/sweep")))  # doctest: +SKIP
    >>> matrix.loc["mimicry", "answer_shift_gain"]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from steering.sweep.metrics import MAIN_EFFECTS


def training_tasks(method: str) -> tuple[str, ...]:
    """The tasks a learned method's canonical name says it trained on (`steering.methods.registry`), else ().

    Parsed from the name, so the app reads a matrix without importing the model code.

    Example:
        >>> training_tasks("learned:known@all/answer+mimicry"), training_tasks("learned:correct")
        (('answer', 'mimicry'), ())
    """
    head, slash, tasks = method.partition("/")
    if not slash or not (head == "learned" or head.startswith(("learned:", "learned@"))):
        return ()
    return tuple(t for t in tasks.split("+") if t)


def transfer_matrix(table: pd.DataFrame, strength: float = -1.0) -> pd.DataFrame:
    """One row per learned method with its own training tasks (index: the tasks, '+'-joined); per test task
    `<task>_shift_gain` (+ `_low`/`_high`), `<task>_flip_rate` and `<task>_flip_rate_base`.

    Args:
        table: a sweep's cells (`steering.sweep.read_table`).
        strength: the strength read on each row's curve (a method without it is left out).
    """
    rows: dict[str, dict[str, Any]] = {}
    for method, cells in table.groupby("method", sort=True):
        tasks = training_tasks(str(method))
        if not tasks:
            continue
        first = cells.sort_values(["layer", "positions"]).iloc[0]
        curve = cells[(cells.layer == first.layer) & (cells.positions == first.positions)
                      & (cells["mode"] == first["mode"])]
        steered, base = curve[np.isclose(curve.strength, strength)], curve[curve.strength == 0.0]
        if steered.empty:
            continue
        s = steered.iloc[0]
        b = base.iloc[0] if not base.empty else None
        row: dict[str, Any] = {"method": str(method), "layer": int(s.layer), "positions": s.positions,
                               "strength": float(s.strength)}
        for task in MAIN_EFFECTS:
            for column in (f"{task}_shift_gain", f"{task}_shift_gain_low", f"{task}_shift_gain_high",
                           f"{task}_flip_rate"):
                row[column] = float(s[column]) if column in s.index else float("nan")
            flip = f"{task}_flip_rate"
            row[f"{flip}_base"] = float(b[flip]) if b is not None and flip in b.index else float("nan")
        rows["+".join(tasks)] = row
    return pd.DataFrame.from_dict(rows, orient="index")
