"""Models: load any chat model as a `ChatModel`, render its chat template, find its parts, hook its sites.

| module          | holds                                                                            |
| --------------- | -------------------------------------------------------------------------------- |
| `loading`       | `load_model`: "smollm2" (embedded GGUF), hub id, local folder, `.gguf` file       |
| `chat`          | chat-template rendering (Llama-2 `[INST]` for models without one)                |
| `architectures` | where the parts of a decoder live in each HF architecture (a registry)           |
| `hooks`         | the one site-to-module mapping (`interp.sites` names) and forward hooks on it     |
| `memory`        | will the model fit? (`LoadRequest`, estimated from the config alone)              |

Example:
    >>> from interp.models import load_model
    >>> model = load_model("smollm2")  # doctest: +SKIP
"""

from interp.models.architectures import ArchLayout, layout_for, module_at
from interp.models.chat import render_chat
from interp.models.hooks import KIND_ORDER, HookPoint, execution_order, hook_point, hooks_on
from interp.models.loading import EMBEDDED_NAMES, ChatModel, ModelLoadError, file_hash, load_model
from interp.models.memory import LoadRequest, MemoryCheckError, MemoryEstimate, check_memory, estimate_memory

__all__ = [
    "check_memory",
    "estimate_memory",
    "execution_order",
    "file_hash",
    "hook_point",
    "hooks_on",
    "layout_for",
    "load_model",
    "module_at",
    "render_chat",
    "ArchLayout",
    "ChatModel",
    "EMBEDDED_NAMES",
    "HookPoint",
    "KIND_ORDER",
    "LoadRequest",
    "MemoryCheckError",
    "MemoryEstimate",
    "ModelLoadError",
]
