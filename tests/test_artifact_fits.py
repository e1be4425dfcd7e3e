"""One compatibility check (`interp.store.compat.check_artifact_fits`) for every artifact that records its model."""

from __future__ import annotations

import numpy as np
import pytest

from interp.store.compat import check_artifact_fits
from probes.direction import Direction, check_compatible
from steering.artifacts.probe_gate import ProbeGate
from steering.artifacts.steering_vector import SteeringVector, VectorMismatchError

A, B = "a" * 64, "b" * 64


class _Refused(ValueError):
    pass


def test_width_always_refused_hash_only_when_both_known_and_not_forced() -> None:
    check_artifact_fits("vector", 8, A, 8, A)
    check_artifact_fits("vector", 8, "", 8, B)  # the artifact knows no hash: nothing to compare
    check_artifact_fits("vector", 8, A, 8, None)  # nor the model
    check_artifact_fits("vector", 8, A, 8, B, force=True)
    with pytest.raises(ValueError, match=r"^vector has d_model 8, the model has 16$"):
        check_artifact_fits("vector", 8, A, 16, A, force=True)  # no force across widths
    with pytest.raises(ValueError, match=r"^vector was made on model aaaaaaaaaaaa, this model is bbbbbbbbbbbb; "
                                         r"pass --force to use it anyway$"):
        check_artifact_fits("vector", 8, A, 8, B)
    with pytest.raises(_Refused, match=r"^direction 'k' was fitted on model aaaaaaaaaaaa, this model is "
                                       r"bbbbbbbbbbbb$"):  # no hint where nothing can be forced
        check_artifact_fits("direction 'k'", 8, A, 8, B, made="fitted on model", force_hint=None, error=_Refused)


def test_every_artifact_refuses_through_it() -> None:
    d = Direction(np.ones(4), 1, "blocks.1.hook_resid_post", "answer", "lda", "pressure", model_hash=A)
    with pytest.raises(ValueError, match=r"direction '.*' has d_model 4, the model/store has 6$"):
        check_compatible(d, 6)
    with pytest.raises(ValueError, match=r"direction '.*' was fitted on model aaaaaaaaaaaa, this model is bbbb"):
        check_compatible(d, 4, B)
    v = SteeringVector({1: np.ones(4, np.float32)}, method="m", d_model=4, model_hash=A)
    with pytest.raises(VectorMismatchError, match=r"^vector has d_model 4, the model has 6$"):
        v.check_compatible(6, A)
    with pytest.raises(VectorMismatchError, match=r"pass force=True \(--force\)"):
        v.check_compatible(4, B)
    v.check_compatible(4, B, force=True)
    gate = ProbeGate(np.array([1.0, 0.0, 0.0, 0.0], np.float32), 0.0, 0.0, layer=1, meta={"model_hash": A})
    with pytest.raises(ValueError, match=r"^the gate has d_model 4, the model has 6$"):
        gate.check_compatible(6, A, force=True)
    with pytest.raises(ValueError, match=r"^the gate was trained on model file aaaaaaaaaaaa, this model is "
                                         r"bbbbbbbbbbbb; pass --force to use it anyway$"):
        gate.check_compatible(4, B)
    gate.check_compatible(4, B, force=True)
    gate.check_compatible(4)  # steer() checks the width only
