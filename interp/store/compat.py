"""Does an artifact fit a model: the one check every artifact that records its model goes through.

A probe `Direction` (`probes.direction.check_compatible`), a `SteeringVector`
(`.check_compatible`), a `ProbeGate` (`.check_compatible`) and an export being
verified (`steering.export.verify.check_model`) each record the residual width
(`d_model`) and the weights hash of the model they were made on. Another width
is always refused (nothing can be applied across widths); another weights hash
is refused unless forced, and only when both sides know a hash (a hand-built
artifact or a store without provenance knows none). Each artifact names itself
and its own error type; callers that read it from a file add the path.

Example:
    >>> check_artifact_fits("vector", 64, "", 64, "abc")
    >>> check_artifact_fits("vector", 32, "", 64, "")
    Traceback (most recent call last):
    ...
    ValueError: vector has d_model 32, the model has 64
"""

from __future__ import annotations

from collections.abc import Callable

#: how many characters of a weights hash a refusal shows
HASH_SHOWN = 12


def check_artifact_fits(
    what: str,
    d_model: int,
    model_hash: str | None,
    target_d_model: int,
    target_hash: str | None,
    *,
    made: str = "made on model",
    target: str = "the model",
    force: bool = False,
    force_hint: str | None = "pass --force to use it anyway",
    error: Callable[[str], Exception] = ValueError,
) -> None:
    """Refuse an artifact made for another width always, for another weights hash unless `force`.

    Args:
        what: the artifact as the message names it ("vector", "direction 'k'", "the export").
        d_model, model_hash: what the artifact records of the model it was made on ("" or None: no hash).
        target_d_model, target_hash: the model (or store) it is about to be used on.
        made: how it came from its model, as in "{what} was {made} {hash}" ("fitted on model", ...).
        target: what the width is compared with, as in "{target} has {target_d_model}".
        force: accept another weights hash.
        force_hint: appended to a hash refusal (how to force it); None when the artifact cannot be forced.
        error: the exception type raised (called with the message).

    Raises:
        `error`: "{what} has d_model {d}, {target} has {D}" or "{what} was {made} {hash}, this model is {hash}".
    """
    if d_model != target_d_model:
        raise error(f"{what} has d_model {d_model}, {target} has {target_d_model}")
    if model_hash and target_hash and model_hash != target_hash and not force:
        hint = f"; {force_hint}" if force_hint else ""
        raise error(f"{what} was {made} {model_hash[:HASH_SHOWN]}, this model is {target_hash[:HASH_SHOWN]}{hint}")
