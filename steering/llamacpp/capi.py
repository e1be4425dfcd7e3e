"""ctypes bindings for the llama.cpp C functions the workbench calls, and nothing else.

Written against the `include/llama.h` that `llama-cpp-python==0.3.36` vendors
(the library `steering.llamacpp.build` compiles). The three structs passed by
value (`llama_model_params`, `llama_context_params`, `llama_batch`) are
declared field by field in the header's order; the build compiles a probe
against that header which records each struct's size and each field's offset
(`layout.json`), and `load` refuses a library whose layout differs from these
declarations, so a mismatch is an error, never memory corruption.

Example:
    >>> lib = load(find_library())  # doctest: +SKIP
    >>> model = lib.llama_model_load_from_file(b"model.gguf", lib.llama_model_default_params())  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

c_int32, c_uint32, c_float, c_bool, c_void_p = ctypes.c_int32, ctypes.c_uint32, ctypes.c_float, ctypes.c_bool, ctypes.c_void_p
c_enum = ctypes.c_int  # C enums of llama.h are int-sized (the layout probe checks it)


class ModelParams(ctypes.Structure):
    """`struct llama_model_params`."""

    _fields_ = [
        ("devices", c_void_p), ("tensor_buft_overrides", c_void_p), ("n_gpu_layers", c_int32),
        ("split_mode", c_enum), ("load_mode", c_enum), ("lazy_mode", c_enum), ("main_gpu", c_int32),
        ("tensor_split", c_void_p), ("progress_callback", c_void_p), ("progress_callback_user_data", c_void_p),
        ("kv_overrides", c_void_p), ("vocab_only", c_bool), ("check_tensors", c_bool), ("use_extra_bufts", c_bool),
        ("no_host", c_bool), ("no_alloc", c_bool), ("load_mtp", c_bool),
    ]


class ContextParams(ctypes.Structure):
    """`struct llama_context_params`."""

    _fields_ = [
        ("n_ctx", c_uint32), ("n_batch", c_uint32), ("n_ubatch", c_uint32), ("n_seq_max", c_uint32),
        ("n_rs_seq", c_uint32), ("n_outputs_max", c_uint32), ("n_outputs_max_per_seq", c_uint32),
        ("n_threads", c_int32), ("n_threads_batch", c_int32), ("ctx_type", c_enum), ("rope_scaling_type", c_enum),
        ("pooling_type", c_enum), ("attention_type", c_enum), ("flash_attn_type", c_enum),
        ("rope_freq_base", c_float), ("rope_freq_scale", c_float), ("yarn_ext_factor", c_float),
        ("yarn_attn_factor", c_float), ("yarn_beta_fast", c_float), ("yarn_beta_slow", c_float),
        ("yarn_orig_ctx", c_uint32), ("defrag_thold", c_float), ("cb_eval", c_void_p),
        ("cb_eval_user_data", c_void_p), ("type_k", c_enum), ("type_v", c_enum), ("abort_callback", c_void_p),
        ("abort_callback_data", c_void_p), ("embeddings", c_bool), ("offload_kqv", c_bool), ("no_perf", c_bool),
        ("op_offload", c_bool), ("swa_full", c_bool), ("kv_unified", c_bool), ("samplers", c_void_p),
        ("n_samplers", ctypes.c_size_t), ("ctx_other", c_void_p),
    ]


class Batch(ctypes.Structure):
    """`struct llama_batch`: per token its id, position, sequence ids and whether to output logits."""

    _fields_ = [
        ("n_tokens", c_int32), ("token", ctypes.POINTER(c_int32)), ("embd", ctypes.POINTER(c_float)),
        ("pos", ctypes.POINTER(c_int32)), ("n_seq_id", ctypes.POINTER(c_int32)),
        ("seq_id", ctypes.POINTER(ctypes.POINTER(c_int32))), ("logits", ctypes.POINTER(ctypes.c_int8)),
    ]


#: the C name of each struct declared here, for the layout probe
STRUCTS: dict[str, type[ctypes.Structure]] = {
    "struct llama_model_params": ModelParams,
    "struct llama_context_params": ContextParams,
    "struct llama_batch": Batch,
}

LogCallback = ctypes.CFUNCTYPE(None, c_enum, ctypes.c_char_p, c_void_p)
GGML_LOG_LEVEL_ERROR = 4

# name: (argument types, return type)
FUNCTIONS: dict[str, tuple[list[Any], Any]] = {
    "llama_backend_init": ([], None),
    "llama_log_set": ([LogCallback, c_void_p], None),
    "llama_model_default_params": ([], ModelParams),
    "llama_context_default_params": ([], ContextParams),
    "llama_model_load_from_file": ([ctypes.c_char_p, ModelParams], c_void_p),
    "llama_model_free": ([c_void_p], None),
    "llama_init_from_model": ([c_void_p, ContextParams], c_void_p),
    "llama_free": ([c_void_p], None),
    "llama_model_n_embd": ([c_void_p], c_int32),
    "llama_model_n_layer": ([c_void_p], c_int32),
    "llama_model_get_vocab": ([c_void_p], c_void_p),
    "llama_vocab_n_tokens": ([c_void_p], c_int32),
    "llama_n_ctx": ([c_void_p], c_uint32),
    "llama_get_memory": ([c_void_p], c_void_p),
    "llama_memory_clear": ([c_void_p, c_bool], None),
    "llama_memory_seq_rm": ([c_void_p, c_int32, c_int32, c_int32], c_bool),
    "llama_decode": ([c_void_p, Batch], c_int32),
    "llama_get_logits_ith": ([c_void_p, c_int32], ctypes.POINTER(c_float)),
    "llama_set_adapter_cvec": ([c_void_p, ctypes.POINTER(c_float), ctypes.c_size_t, c_int32, c_int32, c_int32],
                               c_int32),
}

LIBRARY = "libllama.so"
LAYOUT_FILE = "layout.json"


class LibraryError(RuntimeError):
    """The llama.cpp library is missing, cannot be loaded, or does not match these bindings."""


def struct_layout(struct: type[ctypes.Structure]) -> dict[str, int]:
    """`{"sizeof": n, field: offset, ...}` of a ctypes struct, comparable with the probe's `layout.json`.

    Example:
        >>> struct_layout(Batch)["sizeof"], struct_layout(Batch)["token"]
        (56, 8)
    """
    out = {"sizeof": ctypes.sizeof(struct)}
    for name, *_ in struct._fields_:
        out[name] = getattr(struct, name).offset
    return out


def probe_source() -> str:
    """C source that prints the layout of every struct in `STRUCTS` as JSON (compiled by the build)."""
    lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "llama.h"', "int main(void) {", '  printf("{");']
    for i, (c_name, struct) in enumerate(STRUCTS.items()):
        lines.append(f'  printf("{"," if i else ""}\\"{c_name}\\": {{\\"sizeof\\": %zu", sizeof({c_name}));')
        for name, *_ in struct._fields_:
            lines.append(f'  printf(", \\"{name}\\": %zu", offsetof({c_name}, {name}));')
        lines.append('  printf("}");')
    lines += ['  printf("}\\n");', "  return 0;", "}"]
    return "\n".join(lines) + "\n"


def check_layout(recorded: dict[str, dict[str, int]]) -> list[str]:
    """Where the probe's recorded layout differs from the ctypes declarations; [] when they match."""
    problems = []
    for c_name, struct in STRUCTS.items():
        ours, theirs = struct_layout(struct), recorded.get(c_name)
        if theirs != ours:
            problems.append(f"{c_name}: library {theirs}, bindings {ours}")
    return problems


class Library:
    """The loaded llama.cpp library with typed functions; its C log goes to `errors` (level error) only.

    Args:
        folder: the folder holding `libllama.so`, its ggml libraries and `layout.json`.
    """

    def __init__(self, folder: Path) -> None:
        path = folder / LIBRARY
        if not path.is_file():
            raise LibraryError(f"no {LIBRARY} in {folder}")
        layout = folder / LAYOUT_FILE
        if not layout.is_file():
            raise LibraryError(f"no {LAYOUT_FILE} in {folder}: rebuild the library (make llamacpp)")
        problems = check_layout(json.loads(layout.read_text()))
        if problems:
            raise LibraryError("the library's structs differ from the bindings: " + "; ".join(problems))
        try:
            self._cdll = ctypes.CDLL(str(path))
        except OSError as e:
            raise LibraryError(f"cannot load {path}: {e}") from None
        self.folder = folder
        self.errors: list[str] = []
        for name, (argtypes, restype) in FUNCTIONS.items():
            fn = getattr(self._cdll, name)
            fn.argtypes, fn.restype = argtypes, restype
            setattr(self, name, fn)
        self._log = LogCallback(self._on_log)  # kept alive as long as the library
        self._cdll.llama_log_set(self._log, None)
        self._cdll.llama_backend_init()

    def _on_log(self, level: int, text: bytes | None, _user: int | None) -> None:
        if level == GGML_LOG_LEVEL_ERROR and text:
            self.errors = [*self.errors[-20:], text.decode(errors="replace").rstrip()]

    def __getattr__(self, name: str) -> Callable[..., Any]:  # the typed C functions set in __init__
        raise AttributeError(f"llama.cpp binding has no function {name!r}")


_LOADED: dict[Path, Library] = {}


def load(folder: Path) -> Library:
    """The library in `folder`, loaded once per process.

    Raises:
        LibraryError: missing files, a failed load, or structs that differ from the bindings.
    """
    folder = folder.resolve()
    if folder not in _LOADED:
        _LOADED[folder] = Library(folder)
    return _LOADED[folder]
