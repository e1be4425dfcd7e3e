"""Remote execution on NDIF (nnsight): models too big for this machine run on NDIF's GPUs.

`workbench cache --backend nnsight --remote --model <hub id>` builds the model
here on PyTorch's `meta` device (config and tokenizer only, no weights), and
every `trace` is shipped to NDIF with `remote=True`; the saved activations come
back and land in an ordinary ActivationStore. It needs:

- a hub id NDIF hosts (e.g. "meta-llama/Llama-3.1-70B-Instruct"; the list is on
  https://nnsight.net/status) — not "smollm2", a `.gguf` file or a local folder;
- an NDIF API key (https://login.ndif.us): `export NDIF_API_KEY=<key>`, or
  `python -c "from nnsight import CONFIG; CONFIG.set_default_api_key('<key>')"`;
- network access to the hub (config, tokenizer) and to NDIF.

Both are checked before anything is downloaded (`check_remote`). nnsight's
`remote="local"` runs the same serialised request in this process, which is
how the tests exercise the path without a network.

Example:
    >>> model = load_remote_model("meta-llama/Llama-3.1-70B-Instruct")  # doctest: +SKIP
    >>> store = capture(model, examples, "blocks.40.hook_resid_post", "last_prompt", "artifacts/big/activations",
    ...                 backend=REMOTE_BACKEND)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interp.capture.backends.nnsight_backend import NnsightBackend
from interp.models.architectures import layout_for
from interp.models.loading import EMBEDDED_NAMES, ChatModel, ModelLoadError

REMOTE_BACKEND = "nnsight-remote"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
KEY_HELP = ("get a key at https://login.ndif.us, then `export NDIF_API_KEY=<key>` (or "
            "`python -c \"from nnsight import CONFIG; CONFIG.set_default_api_key('<key>')\"`)")


class RemoteUnavailableError(ModelLoadError):
    """Remote execution cannot start: not a hub id, or no NDIF API key."""


def ndif_api_key() -> str | None:
    """The NDIF key nnsight would send: $NDIF_API_KEY, else the one saved in nnsight's config."""
    from nnsight import CONFIG

    return os.environ.get("NDIF_API_KEY") or CONFIG.API.APIKEY or None


def check_remote(spec: str) -> None:
    """Refuse, before any download, a spec NDIF cannot serve or a missing API key.

    Example:
        >>> check_remote("smollm2")
        Traceback (most recent call last):
        ...
        interp.capture.backends.remote.RemoteUnavailableError: --remote runs hub models NDIF hosts, named by hub id ...
    """
    if spec.lower() in EMBEDDED_NAMES or spec.endswith(".gguf") or Path(spec).exists() or not HUB_ID.match(spec):
        what = ("the embedded model" if spec.lower() in EMBEDDED_NAMES else
                "a local file or folder" if Path(spec).exists() or spec.endswith(".gguf") else "not a hub id")
        raise RemoteUnavailableError(
            f"--remote runs hub models NDIF hosts, named by hub id (e.g. 'meta-llama/Llama-3.1-70B-Instruct', "
            f"see https://nnsight.net/status); {spec!r} is {what}. Run it locally without --remote.")
    if not ndif_api_key():
        raise RemoteUnavailableError(f"--remote needs an NDIF API key and none is configured: {KEY_HELP}")


@dataclass
class RemoteChatModel(ChatModel):
    """A ChatModel whose weights live on NDIF: `hf` is a meta-device skeleton; inputs stay on the CPU."""

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


def load_remote_model(spec: str) -> ChatModel:
    """Config + tokenizer of a hub model and a weightless skeleton of it (checked by `check_remote` first).

    The store's model hash is "ndif:<id>@<hub revision>" (the weights never reach this machine).

    Raises:
        RemoteUnavailableError: see `check_remote`.
        ModelLoadError: the config or tokenizer could not be fetched.
    """
    check_remote(spec)
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(spec)
        tokenizer = AutoTokenizer.from_pretrained(spec)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"model {spec!r}: could not fetch its config and tokenizer from the hub: {e}") from e
    with torch.device("meta"):
        hf = AutoModelForCausalLM.from_config(config)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    revision = getattr(config, "_commit_hash", None) or "unknown"
    return RemoteChatModel(hf.eval(), tokenizer, spec, f"ndif:{spec}", f"ndif:{spec}@{revision}",
                           layout_for(hf, config.model_type))


class RemoteNnsightBackend(NnsightBackend):
    """The nnsight backend with every trace sent to NDIF (`remote=True`, or "local" to simulate it in-process).

    Args:
        remote: True (NDIF) or "local" (nnsight's serialise-and-run-here simulation, used by the tests).
    """

    name = REMOTE_BACKEND

    def __init__(self, remote: bool | str = True) -> None:
        super().__init__()
        self.remote = remote

    def wrap(self, model: ChatModel) -> Any:
        """nnsight's model for the hub id (or folder, when simulating), weightless here; NDIF resolves the weights."""
        key = id(model.hf)
        if key not in self._wrapped:
            from nnsight.modeling.transformers import TransformersModel

            self._wrapped[key] = TransformersModel(model.spec, task="text-generation", tokenizer=model.tokenizer)
        return self._wrapped[key]


__all__ = ["REMOTE_BACKEND", "RemoteChatModel", "RemoteNnsightBackend", "RemoteUnavailableError", "check_remote",
           "load_remote_model", "ndif_api_key"]
