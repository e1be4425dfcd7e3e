"""Run a GGUF model in llama.cpp (llama-cpp-python), with and without a control vector.

Optional: `pip install '.[llamacpp]'` (llama-cpp-python 0.3.36, built from
source). The control vector goes in through llama.cpp's C API
(`llama_set_adapter_cvec`; `llama_apply_adapter_cvec` in older versions), in
the layout its own `--control-vector` loader builds: a flat buffer of n_embd
floats per layer for layers 1 .. n_layer-1 (see `gguf_cvec.cvec_buffer`).
Token ids come from the HF tokenizer, so both runtimes see the same input.

Example:
    >>> base, steered = llama_cpp_logits(embedded_gguf_path(), ids, vector, 30)  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path

import numpy as np

from interp.models.loading import ChatModel
from steering.artifacts.steering_vector import SteeringVector
from steering.export.gguf_cvec import cvec_buffer
from steering.export.info import ExportError

N_THREADS = 1


def available() -> bool:
    """Whether llama-cpp-python is importable."""
    return importlib.util.find_spec("llama_cpp") is not None


def model_gguf(model: ChatModel) -> Path | None:
    """The GGUF file a model was loaded from, if it came from one."""
    source = Path(model.source)
    return source if source.suffix == ".gguf" and source.is_file() else None


def _run(llm: object, ids: list[list[int]]) -> list[np.ndarray]:
    out = []
    for row in ids:
        llm.reset()  # type: ignore[attr-defined]
        llm.eval(row)  # type: ignore[attr-defined]
        out.append(np.array(llm.scores[: len(row)], dtype=np.float32))  # type: ignore[attr-defined]
    return out


def llama_cpp_logits(
    gguf_model: Path, ids: list[list[int]], vector: SteeringVector, n_layers: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Logits [pos, vocab] per prompt from llama.cpp: unsteered, then with `vector` added (strength 1).

    Args:
        gguf_model: the model's GGUF file.
        ids: token ids per prompt.
        vector: what to add at each `direction.L` (strength already folded in).
        n_layers: the model's layer count.

    Raises:
        ExportError: when llama.cpp refuses the control vector.
    """
    import llama_cpp

    set_cvec = getattr(llama_cpp, "llama_set_adapter_cvec", None) or llama_cpp.llama_apply_adapter_cvec
    n_ctx = max(len(row) for row in ids) + 8
    llm = llama_cpp.Llama(model_path=str(gguf_model), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True,
                          n_threads=N_THREADS, n_threads_batch=N_THREADS, verbose=False)
    try:
        unsteered = _run(llm, ids)
        buffer, il_start, il_end = cvec_buffer(vector, n_layers)
        data = buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        if set_cvec(llm.ctx, data, buffer.size, vector.d_model, il_start, il_end) != 0:
            raise ExportError("llama.cpp refused the control vector (n_embd mismatch?)")
        steered = _run(llm, ids)
    finally:
        llm.close()
    return unsteered, steered
