"""A GGUF model in llama.cpp: a model, contexts with sequences, and the control vector set between decodes.

llama.cpp adds a context's control vector (`llama_set_adapter_cvec`) at every
token a `llama_decode` call processes, and the vector can be set or cleared
between two calls. `LlamaContext.decode` takes tokens of one or more sequences
(each with its own KV cache rows, `seq_id`) and the vector to use for that
call; it sets the vector only when it differs from the one already set (each
change makes llama.cpp rebuild its compute graph).

Example:
    >>> with LlamaModel(gguf) as model, LlamaContext(model, n_ctx=512) as ctx:  # doctest: +SKIP
    ...     logits = ctx.decode([Row(tuple(ids), all_logits=True)], cvec=None)[0]  # [len(ids), vocab]
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from interp.sites import Site, llama_cpp_direction_index
from steering.artifacts.steering_vector import SteeringVector
from steering.llamacpp import capi
from steering.llamacpp.build import VERSION, find_library


def library() -> capi.Library:
    """The cached library, loaded.

    Raises:
        capi.LibraryError: when it is not built (`make llamacpp`) or does not match the bindings.
    """
    folder = find_library()
    if folder is None:
        raise capi.LibraryError(f"llama.cpp {VERSION} is not built: run `make llamacpp` "
                                "(python -m steering.llamacpp.build, about 2 minutes on 2 cores)")
    return capi.load(folder)


def cvec_buffer(vector: SteeringVector, n_layers: int) -> tuple[np.ndarray, int, int]:
    """llama.cpp's flat control-vector buffer for `llama_set_adapter_cvec`, and its layer range.

    The buffer holds n_embd floats per layer for layers 1 .. n_layers-1, in that order (layer 1 first; layer 0 is
    never present), zero where the vector has no layer: the layout a GGUF control vector's `direction.L` tensors
    are loaded into (`interp.sites.llama_cpp_direction_index`).

    Returns:
        (buffer [(n_layers - 1) * d_model] float32, il_start, il_end) with the range inclusive.

    Raises:
        ValueError: for layer 0 or a layer the model lacks.
    """
    buffer = np.zeros(((n_layers - 1), vector.d_model), dtype=np.float32)
    for layer, vec in vector.directions.items():
        index = llama_cpp_direction_index(Site(layer, "hook_resid_post"))
        if index >= n_layers:
            raise ValueError(f"layer {layer} is outside the model's {n_layers} layers")
        buffer[index - 1] = vec
    return buffer.reshape(-1), min(vector.layers), max(vector.layers)


@dataclass(frozen=True, eq=False)
class ControlVector:
    """A control vector in llama.cpp's layout: `(n_layer - 1) * n_embd` floats from layer 1, and its layer range.

    Build it with `ControlVector.of`; identity (not value) decides whether a context must set it again.
    """

    buffer: np.ndarray  # [(n_layer - 1) * n_embd] float32
    il_start: int
    il_end: int
    n_embd: int

    @classmethod
    def of(cls, vector: SteeringVector, strength: float, n_layers: int) -> ControlVector:
        """`strength * vector` at its layers, in the layout of `cvec_buffer`.

        Example:
            >>> cv = ControlVector.of(vector.select([10]), -4.0, n_layers=30)  # doctest: +SKIP
        """
        buffer, start, end = cvec_buffer(vector * strength, n_layers)
        return cls(np.ascontiguousarray(buffer, dtype=np.float32), start, end, vector.d_model)


@dataclass(frozen=True)
class Row:
    """Tokens of one sequence for one decode call.

    Args:
        seq: the sequence id (its KV cache rows).
        tokens: token ids to append.
        start: position of the first token (the sequence's length so far).
        all_logits: output logits at every token (else at the last one only).
    """

    tokens: tuple[int, ...]
    seq: int = 0
    start: int = 0
    all_logits: bool = False


class LlamaModel:
    """A GGUF model loaded by llama.cpp (weights shared by its contexts).

    Args:
        gguf: the model file.
    """

    def __init__(self, gguf: Path) -> None:
        self.lib = library()
        params = self.lib.llama_model_default_params()
        params.n_gpu_layers = 0
        self.ptr = self.lib.llama_model_load_from_file(str(gguf).encode(), params)
        if not self.ptr:
            raise capi.LibraryError(f"llama.cpp cannot load {gguf}: {' | '.join(self.lib.errors[-3:])}")
        self.path = gguf
        self.n_layers = int(self.lib.llama_model_n_layer(self.ptr))
        self.d_model = int(self.lib.llama_model_n_embd(self.ptr))
        self.n_vocab = int(self.lib.llama_vocab_n_tokens(self.lib.llama_model_get_vocab(self.ptr)))

    def close(self) -> None:
        if self.ptr:
            self.lib.llama_model_free(self.ptr)
            self.ptr = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


@dataclass
class _BatchArrays:
    """A `llama_batch` whose arrays numpy owns (kept alive as long as the struct is used)."""

    token: np.ndarray
    pos: np.ndarray
    seq: np.ndarray
    n_seq: np.ndarray
    logits: np.ndarray
    seq_ptrs: Any = field(repr=False)  # ctypes array of int32 pointers into `seq`

    @classmethod
    def of(cls, rows: list[Row]) -> _BatchArrays:
        token = np.concatenate([np.asarray(r.tokens, dtype=np.int32) for r in rows])
        pos = np.concatenate([np.arange(r.start, r.start + len(r.tokens), dtype=np.int32) for r in rows])
        seq = np.concatenate([np.full(len(r.tokens), r.seq, dtype=np.int32) for r in rows])
        logits = np.concatenate([np.full(len(r.tokens), r.all_logits, dtype=np.int8) for r in rows])
        ends = np.cumsum([len(r.tokens) for r in rows]) - 1
        logits[ends] = 1
        pointer = ctypes.POINTER(ctypes.c_int32)
        base = seq.ctypes.data
        seq_ptrs = (pointer * len(seq))(*[ctypes.cast(base + 4 * i, pointer) for i in range(len(seq))])
        return cls(token, pos, seq, np.ones(len(seq), dtype=np.int32), logits, seq_ptrs)

    def struct(self) -> capi.Batch:
        return capi.Batch(
            len(self.token), self.token.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), None,
            self.pos.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
            self.n_seq.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), self.seq_ptrs,
            self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))


class LlamaContext:
    """A llama.cpp context: KV cache for up to `n_seq` sequences and one control vector at a time.

    Args:
        model: the loaded model.
        n_ctx: KV cache size per sequence (tokens).
        n_seq: most sequences held at once (ids 0 .. n_seq - 1).
        n_threads: CPU threads for decoding.
        n_outputs: most tokens one decode returns logits for (None: every token of a decode; llama.cpp
            reserves its compute buffer for that many rows of vocabulary logits, 200 MB per 1024 here).
    """

    def __init__(self, model: LlamaModel, n_ctx: int, n_seq: int = 1, n_threads: int = 1,
                 n_outputs: int | None = None) -> None:
        self.model, self.lib = model, model.lib
        params = self.lib.llama_context_default_params()
        params.n_ctx = n_ctx * n_seq
        params.n_batch = params.n_ubatch = max(n_ctx, n_seq, 64)
        params.n_seq_max = n_seq
        params.n_outputs_max = 0 if n_outputs is None else n_outputs  # 0: n_batch
        params.n_outputs_max_per_seq = 0  # all of a sequence's positions may output logits (verification)
        params.n_threads = params.n_threads_batch = n_threads
        self.ptr = self.lib.llama_init_from_model(model.ptr, params)
        if not self.ptr:
            raise capi.LibraryError(f"llama.cpp cannot make a context: {' | '.join(self.lib.errors[-3:])}")
        self.n_batch = int(params.n_batch)
        self.memory = self.lib.llama_get_memory(self.ptr)
        self._cvec: ControlVector | None = None
        self.vector_changes = 0

    @property
    def current_vector(self) -> ControlVector | None:
        """The control vector set now (None: none)."""
        return self._cvec

    def set_vector(self, cvec: ControlVector | None) -> None:
        """Use `cvec` (None: no vector) for the next decode calls; nothing happens if it is already set."""
        if cvec is self._cvec:
            return
        if cvec is None:
            status = self.lib.llama_set_adapter_cvec(self.ptr, None, 0, self.model.d_model, -1, -1)
        else:
            if cvec.n_embd != self.model.d_model:
                raise ValueError(f"control vector has width {cvec.n_embd}, the model {self.model.d_model}")
            data = cvec.buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            status = self.lib.llama_set_adapter_cvec(self.ptr, data, cvec.buffer.size, cvec.n_embd, cvec.il_start,
                                                     cvec.il_end)
        if status != 0:
            raise capi.LibraryError(f"llama.cpp refused the control vector: {' | '.join(self.lib.errors[-3:])}")
        self._cvec = cvec
        self.vector_changes += 1

    def decode(self, rows: list[Row], cvec: ControlVector | None) -> list[np.ndarray]:
        """Append each row's tokens to its sequence, with `cvec` added; each row's logits.

        Returns:
            per row `[n_tokens, vocab]` float32 if `all_logits`, else `[1, vocab]` (its last token).

        Raises:
            capi.LibraryError: llama.cpp failed (no KV room, a bad batch).
        """
        arrays = _BatchArrays.of(rows)
        if len(arrays.token) > self.n_batch:
            raise ValueError(f"{len(arrays.token)} tokens in one decode, the context takes {self.n_batch}")
        self.set_vector(cvec)
        status = self.lib.llama_decode(self.ptr, arrays.struct())
        if status != 0:
            raise capi.LibraryError(f"llama_decode returned {status}: {' | '.join(self.lib.errors[-3:])}")
        out, offset = [], 0
        for r in rows:
            end = offset + len(r.tokens)
            out.append(np.stack([self._logits(i) for i in range(offset if r.all_logits else end - 1, end)]))
            offset = end
        return out

    def _logits(self, i: int) -> np.ndarray:
        ptr = self.lib.llama_get_logits_ith(self.ptr, i)
        if not ptr:
            raise capi.LibraryError(f"llama.cpp has no logits for batch token {i}")
        return np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,)).copy()

    def forget(self, seq: int) -> None:
        """Drop a sequence's KV cache rows (its id can start a new sequence)."""
        self.lib.llama_memory_seq_rm(self.memory, seq, -1, -1)

    def truncate(self, seq: int, length: int) -> None:
        """Keep a sequence's first `length` tokens in the KV cache, drop the rest (it continues at `length`)."""
        if not self.lib.llama_memory_seq_rm(self.memory, seq, length, -1):
            raise capi.LibraryError(f"llama.cpp cannot cut sequence {seq} at {length}")

    def close(self) -> None:
        if self.ptr:
            self.lib.llama_free(self.ptr)
            self.ptr = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
