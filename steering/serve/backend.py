"""The step-level interface the scheduler drives: a decoding backend that turns live rows into tokens.

The scheduler (`steering.serve.scheduler`) owns requests: the queue, admission,
stop tokens, `max_tokens`, detokenization, streaming, cancellation, timeouts
and shutdown. A backend owns rows: each row's KV cache, its position
bookkeeping and its steering. It knows nothing of HTTP, text or stop tokens; it
produces one greedy token per live row per call until the scheduler releases
the row.

Contract (every backend, torch or llama.cpp):

- Threading: every method is called from the scheduler's one worker thread,
  one call at a time; a backend needs no lock and may keep thread-affine state
  (a llama.cpp context, torch inference mode).
- `admit(rows)`: prefill each row's prompt (the token ids of its rendered
  chat, `RowRequest.token_ids`), steered as `RowRequest.steer` says, and return
  each row's first generated token (the greedy argmax at its last prompt token),
  in the order given. All or nothing: if it raises, none of the rows is live
  (the scheduler then retries them one by one, so a bad row fails alone).
- `step()`: one greedy token for every live row (its input is the row's last
  token), as a list of `Token` in any order. If it raises, the scheduler fails
  the live rows and calls `reset()`.
- `release(keys)`: forget rows (finished, cancelled, timed out, shut down);
  they produce no more tokens and their slots and cache are free before the
  next call. Unknown keys are ignored. Cancellation is only ever a release: the
  scheduler checks the requests between calls, so a row leaves at the next step.
- `can_admit(row)`: whether the row can join the running batch now, beyond
  the server's `max_batch` (which the scheduler enforces): e.g. an engine that
  cannot mix some steerings in one batch says whether this one fits. False
  keeps it queued (in order) until rows leave.
- `reset()`: drop every row.

Steering per row (`RowRequest.steer`, a `steering.rows.RowSteer`, validated by
`Engine.prepare` before the row reaches a backend; None: unsteered) must act
exactly as `steer()` does for that request alone: layers, mode, strength;
positions "generated" steer the last prompt token and every later one
(`steering.spec.GENERATED_OFFSET`), "prompt" the tokens before it, "all" every
token; a `per="last_prompt"` gate decides once, on the row's real last prompt
token, for all of the row's tokens; a `per="token"` gate decides per token.
`Token.steered` says whether the intervention has changed the row at any
position so far (False: its gate held it back; None: an unsteered row).

Example:
    >>> first = backend.admit([RowRequest(7, prompt_ids, None)])  # doctest: +SKIP
    >>> step = backend.step()  # doctest: +SKIP
    >>> backend.release([7])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from steering.rows import RowSteer


@dataclass(frozen=True, eq=False)
class RowRequest:
    """A row to admit.

    Args:
        key: the scheduler's id of the row, unique among live rows.
        token_ids: the rendered, tokenized prompt (no padding).
        steer: the row's steering (None: unsteered).
    """

    key: int
    token_ids: tuple[int, ...]
    steer: RowSteer | None


@dataclass(frozen=True)
class Token:
    """One generated token of one row.

    Args:
        key: the row.
        token: the token id (greedy).
        steered: whether steering has acted on the row so far (None: unsteered row).
        cached: prompt tokens whose KV came from a prefix cache (in `admit` answers; 0 otherwise).
    """

    key: int
    token: int
    steered: bool | None
    cached: int = 0


class DecodeBackend(Protocol):
    """What the scheduler drives (see the module docstring for the contract)."""

    def can_admit(self, row: RowRequest) -> bool:
        """Whether `row` can join the running batch now (the scheduler enforces `max_batch` itself)."""
        ...

    def admit(self, rows: Sequence[RowRequest]) -> list[Token]:
        """Prefill `rows`; their first tokens, in order. All or nothing."""
        ...

    def step(self) -> list[Token]:
        """One token for every live row."""
        ...

    def release(self, keys: Sequence[int]) -> None:
        """Forget these rows (unknown keys are ignored)."""
        ...

    def reset(self) -> None:
        """Forget every row."""
        ...
