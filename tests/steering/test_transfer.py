"""The train-task x test-task matrix reads each learned-with-tasks curve at one strength."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from steering.sweep.transfer import transfer_matrix


def _cells() -> pd.DataFrame:
    rows = []
    for method, gain in (("learned:known/mimicry", 0.4), ("learned:known/answer+feedback", -0.2),
                         ("learned:correct", 9.0), ("caa", 9.0)):
        for layer in (12, 14):
            for strength in (-1.0, -0.5, 0.0):
                scale = 0.0 if strength == 0.0 else (1.0 if strength == -1.0 else 0.5)
                rows.append({"method": method, "layer": layer, "positions": "generated", "mode": "add",
                             "strength": strength, "answer_shift_gain": scale * gain + (layer - 12),
                             "answer_shift_gain_low": scale * gain - 0.1, "answer_shift_gain_high": scale * gain + 0.1,
                             "answer_flip_rate": 0.8 - scale * gain, "mimicry_shift_gain": 2 * scale * gain,
                             "mimicry_shift_gain_low": 0.0, "mimicry_shift_gain_high": 1.0})
    return pd.DataFrame(rows)


def test_rows_are_learned_methods_with_tasks_read_at_the_trained_strength_of_their_first_layer():
    matrix = transfer_matrix(_cells())
    assert list(matrix.index) == ["answer+feedback", "mimicry"]  # no tasks named: not a row
    row = matrix.loc["mimicry"]
    assert row["layer"] == 12 and row["strength"] == -1.0
    assert row["answer_shift_gain"] == pytest.approx(0.4)  # layer 12's cell, not layer 14's (+1)
    assert row["mimicry_shift_gain"] == pytest.approx(0.8)
    assert (row["answer_flip_rate_base"], row["answer_flip_rate"]) == pytest.approx((0.8, 0.4))
    assert np.isnan(row["feedback_shift_gain"])  # a task the test set did not hold
    assert matrix.loc["answer+feedback", "answer_shift_gain"] == pytest.approx(-0.2)
    half = transfer_matrix(_cells(), strength=-0.5)
    assert half.loc["mimicry", "answer_shift_gain"] == pytest.approx(0.2)
    assert transfer_matrix(_cells(), strength=-3.0).empty
