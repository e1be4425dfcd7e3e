"""Will the model fit? Estimate its memory from the config alone, before loading any weight.

The parameter count comes from building the model on PyTorch's `meta`
device (no memory, ~1 s for a 7B config), so every architecture transformers
knows is counted exactly, tied embeddings once. (Not accelerate's
`init_empty_weights`: under transformers 5.23 it leaves tied embeddings
untied and counts them twice.) Weights take `parameters x bytes per dtype`; a margin (default 20%)
covers activations, the KV-free forward passes of caching and allocator
slack. The total is compared with what the target has free: RAM (bounded by
the cgroup limit in a container) for `cpu`, the GPU's free memory for
`cuda[:i]`, every GPU plus RAM for `device_map="auto"` (accelerate fills
the GPUs, then offloads to RAM).

| model shape  | parameters | float32 | bfloat16 / float16 |
| ------------ | ---------- | ------- | ------------------ |
| SmolLM2-135M | 0.13 B     | 0.5 GB  | 0.3 GB             |
| Llama-2-7B   | 6.74 B     | 27.0 GB | 13.5 GB            |
| Llama-2-70B  | 69.0 B     | 276 GB  | 138 GB             |

(weights only, GB = 10^9 bytes; the check adds the margin.)

Example:
    >>> from transformers import LlamaConfig
    >>> seven_b = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
    ...                       num_attention_heads=32, vocab_size=32000)
    >>> round(estimate_memory(seven_b, "bfloat16").weight_bytes / 1e9, 1)
    13.5
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, PretrainedConfig

from interp.models.loading import (
    DTYPES,
    EMBEDDED_NAMES,
    ChatModel,
    ModelLoadError,
    cache_dir,
    embedded_gguf_path,
    file_hash,
    load_model,
)

BYTES_PER_DTYPE = {"float32": 4, "bfloat16": 2, "float16": 2}
DEFAULT_MARGIN = 0.2
GB = 1e9


class MemoryCheckError(ModelLoadError):
    """The model would not fit where it is asked to load; the message says what would."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Memory a model needs: `weight_bytes` (parameters x bytes per dtype) and `total_bytes` (+ margin)."""

    n_params: int
    dtype: str
    weight_bytes: int
    total_bytes: int
    margin: float

    def describe(self) -> str:
        return (f"{self.total_bytes / GB:.1f} GB ({self.n_params / 1e9:.2f} B parameters x "
                f"{BYTES_PER_DTYPE[self.dtype]} bytes in {self.dtype} = {self.weight_bytes / GB:.1f} GB, "
                f"+ {self.margin:.0%} margin)")


def count_parameters(config: PretrainedConfig) -> int:
    """Parameters of the causal LM `config` describes, counted on the meta device (no memory used).

    Example:
        >>> from transformers import LlamaConfig
        >>> count_parameters(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        ...                              num_attention_heads=4, vocab_size=400))
        133440
    """
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def estimate_memory(config: PretrainedConfig, dtype: str, margin: float = DEFAULT_MARGIN) -> MemoryEstimate:
    """Weights and total (with `margin`) for loading `config` in `dtype`.

    Args:
        config: a transformers config (AutoConfig.from_pretrained, or built by hand).
        dtype: "float32", "bfloat16" or "float16".
        margin: fraction added for activations and allocator slack.

    Example:
        >>> from transformers import LlamaConfig
        >>> est = estimate_memory(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        ...                                   num_attention_heads=4, vocab_size=400), "float32")
        >>> est.weight_bytes, est.total_bytes
        (533760, 640512)
    """
    if dtype not in BYTES_PER_DTYPE:
        raise ModelLoadError(f"dtype {dtype!r} not supported; choose one of {', '.join(DTYPES)}")
    n_params = count_parameters(config)
    weights = n_params * BYTES_PER_DTYPE[dtype]
    return MemoryEstimate(n_params, dtype, weights, int(weights * (1 + margin)), margin)


def model_config(spec: str) -> PretrainedConfig | None:
    """The config of a model spec, read without weights; None if it cannot be read here (load_model will say why).

    Example:
        >>> model_config("smollm2").num_hidden_layers  # doctest: +SKIP
        30
    """
    try:
        if spec.lower() in EMBEDDED_NAMES or spec.endswith(".gguf"):
            gguf = embedded_gguf_path() if spec.lower() in EMBEDDED_NAMES else Path(spec)
            if not gguf.is_file():
                return None
            converted = cache_dir() / "models" / file_hash(gguf)[:16]  # where load_model keeps it dequantised
            if (converted / "config.json").is_file():
                return AutoConfig.from_pretrained(str(converted))
            return AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        if Path(spec).is_dir():
            return AutoConfig.from_pretrained(spec)
        return AutoConfig.from_pretrained(spec, local_files_only=True)
    except Exception:  # a damaged config or GGUF raises many types; load_model reports it
        return None


def recorded_config(weights_hash: str) -> PretrainedConfig | None:
    """The config of the model an artifact records by its weights hash, when this machine knows it without loading.

    A vector records its model as the sha256 of the weights, not as a name. Two models are known by that hash
    here: a GGUF that `load_model` has dequantised (its cache folder is keyed by the hash and names it) and the
    embedded model. For any other hash: None (there is nothing to check against).

    Args:
        weights_hash: the sha256 an artifact records (`SteeringVector.model_hash`); "" gives None.

    Example:
        >>> recorded_config(file_hash(embedded_gguf_path())).num_hidden_layers  # doctest: +SKIP
        30
    """
    if not weights_hash:
        return None
    converted = cache_dir() / "models" / weights_hash[:16]  # where load_model keeps a dequantised GGUF
    try:
        if json.loads((converted / "workbench_source.json").read_text()).get("sha256") == weights_hash:
            return AutoConfig.from_pretrained(str(converted))
    except Exception:  # no such folder, or a damaged record or config: fall through to the embedded model
        pass
    try:
        embedded = file_hash(embedded_gguf_path())
    except (ModelLoadError, OSError):  # the embedded model's package is not installed
        return None
    return model_config(EMBEDDED_NAMES[0]) if embedded == weights_hash else None


def _cgroup_free() -> int | None:
    """Bytes left under a cgroup v2 memory limit (containers), None without a limit."""
    limit, current = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")
    try:
        raw = limit.read_text().strip()
        if raw == "max":
            return None
        return max(int(raw) - int(current.read_text().strip()), 0)
    except (OSError, ValueError):
        return None


def available_memory(device: str = "cpu", device_map: str | None = None) -> tuple[int, str]:
    """Free bytes where the model would go, and a phrase naming it.

    Args:
        device: "cpu", "cuda" or "cuda:i".
        device_map: "auto" counts every visible GPU plus RAM (accelerate offloads to RAM last).

    Example:
        >>> free, where = available_memory("cpu")
        >>> free > 0, where.startswith("cpu RAM")
        (True, True)
    """
    import psutil

    ram = psutil.virtual_memory().available
    cgroup = _cgroup_free()
    ram = min(ram, cgroup) if cgroup is not None else ram
    if device_map is not None:
        gpus = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
        return sum(gpus) + ram, f"{len(gpus)} GPU(s) + cpu RAM ({sum(gpus) / GB:.1f} + {ram / GB:.1f} GB free)"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device {device!r}: CUDA is not available on this machine")
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        free = torch.cuda.mem_get_info(index)[0]
        return free, f"cuda:{index} ({free / GB:.1f} GB free)"
    return ram, f"cpu RAM ({ram / GB:.1f} GB free)"


def check_memory(
    spec: str, dtype: str = "float32", device: str = "cpu", device_map: str | None = None, copies: int = 1,
    margin: float = DEFAULT_MARGIN,
) -> MemoryEstimate | None:
    """Refuse, before loading, a model that cannot fit; return the estimate (None if the config is unreadable here).

    Args:
        spec: the model spec (as for `load_model`).
        dtype: the dtype it will load in.
        device: where it will load ("cpu", "cuda:0", ...).
        device_map: "auto" to shard it over every GPU (then RAM).
        copies: how many copies will load on this machine (local Ray workers each hold one).
        margin: fraction added to the weights.

    Raises:
        MemoryCheckError: the estimate exceeds the free memory; the message gives the numbers and the ways out.

    Example:
        >>> check_memory("smollm2", dtype="bfloat16")  # doctest: +SKIP
        MemoryEstimate(n_params=134515008, dtype='bfloat16', ...)
    """
    config = model_config(spec)
    if config is None:
        return None
    estimate = estimate_memory(config, dtype, margin)
    free, where = available_memory(device, device_map)
    needed = estimate.total_bytes * copies
    if needed > free:
        each = f" each, x {copies} copies = {needed / GB:.1f} GB" if copies > 1 else ""
        halves = "" if dtype != "float32" else (
            f" --dtype bfloat16 (about {estimate.total_bytes / 2 * copies / GB:.1f} GB),")
        raise MemoryCheckError(
            f"model {spec!r} needs about {estimate.describe()}{each}, but {where} has only {free / GB:.1f} GB. "
            f"Ways out:{halves} --device-map auto to shard it over several GPUs, fewer --workers, "
            f"--backend nnsight --remote to run it on NDIF, or --ignore-memory-check to try anyway."
        )
    return estimate


@dataclass(frozen=True)
class LoadRequest:
    """How to load a model, checked against free memory first; small and picklable, so Ray workers receive it.

    Args:
        spec: model spec (see `load_model`).
        dtype: "float32", "bfloat16" or "float16".
        device: "cpu", "cuda", "cuda:i" (ignored with `device_map`).
        device_map: "auto" shards the model over the visible GPUs (accelerate), then RAM.
        memory_check: refuse a model that cannot fit (False: `--ignore-memory-check`).

    Example:
        >>> model = LoadRequest("smollm2", dtype="bfloat16").load()  # doctest: +SKIP
    """

    spec: str
    dtype: str = "float32"
    device: str = "cpu"
    device_map: str | None = None
    memory_check: bool = True

    def check(self, copies: int = 1) -> MemoryEstimate | None:
        """`check_memory` for this request (None when skipped or the config is unreadable here)."""
        if not self.memory_check:
            return None
        return check_memory(self.spec, self.dtype, self.device, self.device_map, copies)

    def load(self) -> ChatModel:
        """Check the memory, then `load_model`."""
        self.check()
        return load_model(self.spec, dtype=self.dtype, device=self.device, device_map=self.device_map)


__all__ = [
    "BYTES_PER_DTYPE", "LoadRequest", "MemoryCheckError", "MemoryEstimate", "available_memory", "check_memory", "count_parameters",
    "estimate_memory", "model_config",
]
