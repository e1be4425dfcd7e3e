"""The llama.cpp decoding backend: continuous batching on a GGUF model, each row with its own control vector.

llama.cpp holds one control vector per context, set between `llama_decode`
calls. So the backend keeps every live row as a sequence (its own KV cache
stream, `seq_id` = its slot) in one context, and each decode step groups the
rows by the vector their next token needs (a row's vector where its positions
rule steers that token, none elsewhere): one `llama_decode` per group, the
group already set first, then the others. Rows that share a vector, strength
and layers share one group; an unsteered row, or a "generated" row still in
its prompt, joins the no-vector group. A row is prefilled alone, in spans
(`steering.llamacpp.steered`): for "generated", prompt[:-1] without the
vector, the last prompt token with it. Released rows' sequences are cleared,
so nothing of one request reaches the next one in its slot.

What llama.cpp cannot do is refused by `Engine.prepare` with a 422
(`refuse`): probe gates (the gate reads the residual stream inside the graph,
where llama.cpp offers no read-out before it adds the vector), modes other
than add, and layer 0 (llama.cpp has no control-vector slot before layer 1).

Example:
    >>> backend = LlamaCppBackend(Path("model.gguf"), max_rows=16, n_ctx=2048)  # doctest: +SKIP
    >>> backend.admit([RowRequest(1, prompt_ids, row_steer)])  # doctest: +SKIP
    [Token(key=1, token=504, steered=True, cached=0)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from steering.apply.spec import SteerSpec
from steering.llamacpp.runtime import ControlVector, LlamaContext, LlamaModel, Row
from steering.llamacpp.steered import is_steered, spans, steered_span
from steering.serve.backend import RowRequest, Token

if TYPE_CHECKING:
    from steering.serve.engine import Engine

N_CTX = 2048  # KV cache per row (tokens): prompt + max_tokens must fit (Engine.context is set to it)


def refuse(row: SteerSpec, n_layers: int) -> str | None:
    """Why llama.cpp cannot apply `row`, or None when it can.

    Example:
        >>> refuse(SteerSpec(vector, (0,)), 30)  # doctest: +SKIP
        'llama.cpp cannot steer layer 0 ...'
    """
    if row.gate is not None:
        return ("the llama.cpp engine cannot run a probe gate (llama.cpp adds its control vector inside its "
                "graph and offers no read-out of the residual stream before it): serve with --engine torch")
    if row.mode != "add":
        return f"the llama.cpp engine adds a control vector; mode {row.mode!r} needs --engine torch"
    if row.vector.site_kind != "hook_resid_post":
        return f"llama.cpp adds at blocks.L.hook_resid_post; this vector acts on {row.vector.site_kind}"
    if any(layer % n_layers == 0 for layer in row.layers):
        return "llama.cpp cannot steer layer 0 (its control vectors start at layer 1): choose layers >= 1"
    return None


@dataclass(eq=False)
class _Row:
    """A live row: its sequence slot, its control vector and where it applies, the token it feeds next."""

    key: int
    seq: int
    steer: SteerSpec | None
    cvec: ControlVector | None
    span: tuple[int, int | None]
    position: int  # where `last` goes
    last: int
    steered: bool
    strength: float = 0.0

    def vector_now(self) -> ControlVector | None:
        """The vector the next token is decoded with."""
        return self.cvec if is_steered(self.span, self.position) else None

    def token(self) -> Token:
        return Token(self.key, self.last, None if self.steer is None else self.steered)


class LlamaCppBackend:
    """`DecodeBackend` on llama.cpp (see the module docstring).

    Args:
        gguf: the served model's GGUF file.
        max_rows: most live rows (the server's max_batch).
        n_ctx: KV cache per row, in tokens.
        n_threads: CPU threads llama.cpp decodes with.
    """

    def __init__(self, gguf: Path, max_rows: int, n_ctx: int = N_CTX, n_threads: int = 1) -> None:
        self.model = LlamaModel(gguf)
        # one output (the next token's logits) per row and decode
        self.ctx = LlamaContext(self.model, n_ctx, n_seq=max_rows, n_threads=n_threads, n_outputs=max_rows)
        self.n_ctx = n_ctx
        self._rows: dict[int, _Row] = {}
        self._free = list(range(max_rows - 1, -1, -1))

    def _vector(self, steer: SteerSpec | None, strength: float) -> ControlVector | None:
        """The row's control vector, shared with a live row that steers the same way (one group per step)."""
        if steer is None:
            return None
        n = self.model.n_layers
        layers = tuple(sorted({layer % n for layer in steer.layers}))
        for row in self._rows.values():
            other = row.steer
            if (other is not None and row.cvec is not None and other.vector is steer.vector
                    and row.strength == strength and tuple(sorted({x % n for x in other.layers})) == layers):
                return row.cvec
        return ControlVector.of(steer.vector.select(list(layers)), float(strength), n)

    def can_admit(self, row: RowRequest) -> bool:
        return bool(self._free)

    def admit(self, rows: Sequence[RowRequest]) -> list[Token]:
        """Prefill each row alone, in the spans its positions rule cuts; all or nothing."""
        done: list[_Row] = []
        try:
            for request in rows:
                done.append(self._prefill(request))
        except BaseException:
            self.release([r.key for r in done])
            raise
        return [r.token() for r in done]

    def _prefill(self, request: RowRequest) -> _Row:
        if not self._free:
            raise RuntimeError("no free llama.cpp sequence for a new row")
        ids = request.token_ids
        if len(ids) >= self.n_ctx:
            raise ValueError(f"a prompt of {len(ids)} tokens does not fit the {self.n_ctx}-token KV cache of a row")
        seq = self._free.pop()
        cvec = self._vector(request.steer, request.strength)
        positions = request.steer.positions if request.steer is not None else "all"
        span = steered_span(positions, len(ids))
        try:
            steered, logits = False, np.empty(0)
            for a, b, on in spans(len(ids), span):
                logits = self.ctx.decode([Row(ids[a:b], seq, a)], cvec if on else None)[0][-1]
                steered = steered or (on and cvec is not None)
        except BaseException:
            self.ctx.forget(seq)
            self._free.append(seq)
            raise
        row = _Row(request.key, seq, request.steer, cvec, span, len(ids), int(np.argmax(logits)), steered,
                   request.strength)
        self._rows[request.key] = row
        return row

    def step(self) -> list[Token]:
        """One token per live row: one decode per group of rows that use the same vector now."""
        groups: dict[int, tuple[ControlVector | None, list[_Row]]] = {}
        for row in self._rows.values():
            cvec = row.vector_now()
            groups.setdefault(id(cvec), (cvec, []))[1].append(row)
        current = self.ctx.current_vector
        order = sorted(groups.values(), key=lambda g: g[0] is not current)  # the vector already set goes first
        out = []
        for cvec, rows in order:
            logits = self.ctx.decode([Row((r.last,), r.seq, r.position) for r in rows], cvec)
            for r, row_logits in zip(rows, logits, strict=True):
                r.steered = r.steered or cvec is not None
                r.position += 1
                r.last = int(np.argmax(row_logits[-1]))
                out.append(r.token())
        return out

    def release(self, keys: Sequence[int]) -> None:
        for key in keys:
            row = self._rows.pop(key, None)
            if row is not None:
                self.ctx.forget(row.seq)
                self._free.append(row.seq)

    def reset(self) -> None:
        self.release(list(self._rows))

    def close(self) -> None:
        """Free the context and the model (the backend is unusable after)."""
        self._rows.clear()
        self.ctx.close()
        self.model.close()


def llamacpp_backend(engine: Engine, n_threads: int | None = None) -> LlamaCppBackend:
    """A backend on the engine's GGUF; the engine then refuses what llama.cpp cannot do and longer contexts.

    Args:
        engine: the served model (loaded from "smollm2" or a .gguf file), its registry and limits.
        n_threads: llama.cpp threads (default: torch's, what the torch engine would use).

    Raises:
        ValueError: the model has no GGUF file.
        LibraryError: llama.cpp is not built (`make llamacpp`).
    """
    import torch

    from steering.export.llamacpp import model_gguf

    gguf = model_gguf(engine.model)
    if gguf is None:
        raise ValueError(f"--engine llamacpp serves a GGUF model (smollm2 or a .gguf file); {engine.model.spec!r} "
                         "has no GGUF file")
    backend = LlamaCppBackend(gguf, engine.limits.max_batch, min(N_CTX, engine.context),
                              n_threads or torch.get_num_threads())
    engine.context = backend.n_ctx
    n_layers = engine.model.n_layers
    engine.refuse = lambda row: refuse(row, n_layers)
    return backend
