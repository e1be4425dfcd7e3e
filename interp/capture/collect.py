"""Capture activations of many examples into an ActivationStore, resumably.

Examples are split into shards of `shard_size`; inside a shard they are
sorted by length into batches (less padding), run through a backend, and the
requested positions are gathered. Each shard is written atomically and the
manifest is updated after it, so a killed job resumes from the last shard.
The same examples, sites, positions and batch settings give bit-identical
shards, whether or not the run was interrupted.

Example:
    >>> store = capture(model, examples, ["blocks.*.hook_resid_post"], ["last_prompt"],
    ...                 "artifacts/demo/activations")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from interp.capture.backends import Backend, Batch, make_backend
from interp.capture.positions import POSITIONS, Encoded, Position, encode_example, parse_positions
from interp.models.loading import ChatModel
from interp.sites import expand_sites
from interp.store.activations import FORMAT_VERSION, ActivationStore
from interp.store.writer import (
    ShardRange,
    add_shard,
    commit,
    examples_hash,
    open_store,
    pending_shards,
    write_capture_shard,
)
from interp.tasks.example import Example

STORE_DTYPES = {"float32": np.float32, "float16": np.float16}
ProgressFn = Callable[[int, int], None]  # (examples done, tokens done) increments


@dataclass(frozen=True)
class CaptureConfig:
    """What defines a store's content; a resume must match it exactly."""

    sites: tuple[str, ...]
    positions: tuple[str, ...]
    dtype: str = "float32"
    batch_size: int = 8
    shard_size: int = 256
    padding_side: str = "right"

    def __post_init__(self) -> None:
        if self.dtype not in STORE_DTYPES:
            raise ValueError(f"store dtype {self.dtype!r}: choose from {', '.join(STORE_DTYPES)}")
        if self.batch_size < 1 or self.shard_size < 1:
            raise ValueError("batch_size and shard_size must be >= 1")
        if self.padding_side not in ("left", "right"):
            raise ValueError("padding_side must be 'left' or 'right'")


def make_batch(encoded: list[Encoded], pad_id: int, padding_side: str) -> tuple[Batch, list[int]]:
    """Pad a list of encodings; return the batch and each row's left offset."""
    width = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    offsets = []
    for i, e in enumerate(encoded):
        start = width - len(e) if padding_side == "left" else 0
        ids[i, start : start + len(e)] = torch.tensor(e.ids)
        mask[i, start : start + len(e)] = 1
        offsets.append(start)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(ids, mask, position_ids), offsets


@dataclass
class _Plan:
    """Rows to gather from one batch: each row averages some (batch row, token) cells."""

    cells_b: list[int]
    cells_t: list[int]
    cells_row: list[int]
    weights: list[float]
    example_index: list[int]
    position_code: list[int]
    token_index: list[int]

    @property
    def n_rows(self) -> int:
        return len(self.example_index)


def _plan(
    batch_items: list[tuple[int, Example, Encoded]], offsets: list[int], positions: list[Position]
) -> _Plan:
    plan = _Plan([], [], [], [], [], [], [])
    for b, (ex_idx, ex, enc) in enumerate(batch_items):
        for code, pos in enumerate(positions):
            if pos.name == "user_claim" and not ex.user_claim or pos.name == "answer" and not ex.answer:
                continue
            idx = pos.indices(enc, ex)
            groups = [idx] if pos.one_row else [[i] for i in idx]
            for g in groups:
                row = plan.n_rows
                for t in g:
                    plan.cells_b.append(b)
                    plan.cells_t.append(t + offsets[b])
                    plan.cells_row.append(row)
                    plan.weights.append(1.0 / len(g))
                plan.example_index.append(ex_idx)
                plan.position_code.append(code)
                plan.token_index.append(g[0] if len(g) == 1 else -1)
    return plan


def _gather(acts: torch.Tensor, plan: _Plan) -> torch.Tensor:
    cells = acts[torch.tensor(plan.cells_b), torch.tensor(plan.cells_t)]  # [cells, d]
    weighted = cells * torch.tensor(plan.weights, dtype=acts.dtype)[:, None]
    out = torch.zeros((plan.n_rows, acts.shape[-1]), dtype=acts.dtype)
    return out.index_add_(0, torch.tensor(plan.cells_row), weighted)


def validate(model: ChatModel, examples: list[Example], positions: list[Position]) -> list[Encoded]:
    """Encode every example and check its positions resolve, before any model work."""
    encoded = []
    for ex in examples:
        enc = encode_example(model, ex)
        for pos in positions:
            if pos.name == "user_claim" and not ex.user_claim or pos.name == "answer" and not ex.answer:
                continue
            pos.indices(enc, ex)
        encoded.append(enc)
    return encoded


def resolve_config(
    model: ChatModel, sites: list[str] | str, positions: list[str] | str, config: CaptureConfig | None = None
) -> CaptureConfig:
    """`config` with its sites expanded for `model` and its positions parsed (what a store records).

    Example:
        >>> resolve_config(model, "blocks.*.hook_resid_post", "last_prompt").sites[:2]  # doctest: +SKIP
        ('blocks.0.hook_resid_post', 'blocks.1.hook_resid_post')
    """
    site_names = tuple(s.name for s in expand_sites(sites, model.n_layers))
    pos_names = tuple(p.name for p in parse_positions(positions))
    base = config or CaptureConfig(site_names, pos_names)
    return replace(base, sites=site_names, positions=pos_names)


def manifest_seed(model: ChatModel, examples: list[Example], config: CaptureConfig, backend: str) -> dict[str, object]:
    """The manifest of an empty store: fingerprint (model hash + data hash + config), dims, provenance.

    Every worker computes it from its own model copy; equal fingerprints mean the shards agree.
    """
    data_hash = examples_hash(examples)
    fingerprint = hashlib.sha256(
        json.dumps([model.weights_hash, data_hash, config.__dict__], sort_keys=True).encode()
    ).hexdigest()
    site_list = expand_sites(list(config.sites), model.n_layers)
    return {
        "format_version": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "model": model.provenance(),
        "data_hash": data_hash,
        "sites": list(config.sites),
        "positions": list(config.positions),
        "dims": {s.name: model.n_heads * model.d_head if s.kind == "attn.hook_z" else model.d_model for s in site_list},
        "dtype": config.dtype,
        "batch_size": config.batch_size,
        "shard_size": config.shard_size,
        "padding_side": config.padding_side,
        "backend": backend,
        "n_examples": len(examples),
        "shards": [],
        "complete": False,
    }


def compute_shard(
    model: ChatModel,
    examples: list[Example],
    encoded: list[Encoded],
    shard: ShardRange,
    config: CaptureConfig,
    engine: Backend,
    progress: ProgressFn | None = None,
) -> dict[str, np.ndarray]:
    """One shard's tensors: examples `shard.start:shard.stop` sorted by length into batches, gathered.

    The single place where activations are computed: the in-process `capture` and
    the Ray workers (interp.capture.distributed) both call it, so their shards are equal bit for bit.

    Args:
        model: the loaded model.
        examples: all examples of the store (indices are store indices).
        encoded: `validate(model, examples, positions)`, aligned with `examples`.
        shard: which examples.
        config: a resolved config (see `resolve_config`).
        engine: the capture backend.
        progress: called after each batch with (examples, tokens).

    Returns:
        `{site: [rows, d], "example_index", "position_code", "token_index": [rows]}`.

    Example:
        >>> tensors = compute_shard(model, examples, validate(model, examples, positions),
        ...                         ShardRange(0, 0, 8), config, make_backend("hooks"))  # doctest: +SKIP
    """
    site_list = expand_sites(list(config.sites), model.n_layers)
    pos_list = parse_positions(list(config.positions))
    np_dtype = STORE_DTYPES[config.dtype]
    pad_id = int(model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0)
    order = sorted(range(shard.start, shard.stop), key=lambda i: (len(encoded[i]), i))
    columns: dict[str, list[np.ndarray]] = {s.name: [] for s in site_list}
    meta: dict[str, list[int]] = {"example_index": [], "position_code": [], "token_index": []}
    for b0 in range(0, len(order), config.batch_size):
        items = [(i, examples[i], encoded[i]) for i in order[b0 : b0 + config.batch_size]]
        batch, offsets = make_batch([e for _, _, e in items], pad_id, config.padding_side)
        plan = _plan(items, offsets, pos_list)
        on_device = Batch(*(t.to(model.device) for t in (batch.input_ids, batch.attention_mask, batch.position_ids)))
        acts = engine.activations(model, on_device, site_list)
        for s in site_list:
            columns[s.name].append(_gather(acts[s].float().cpu(), plan).numpy().astype(np_dtype))
        meta["example_index"] += plan.example_index
        meta["position_code"] += plan.position_code
        meta["token_index"] += plan.token_index
        if progress:
            progress(len(items), int(batch.attention_mask.sum()))
    tensors = {name: np.concatenate(parts) for name, parts in columns.items()}
    tensors.update({k: np.asarray(v, dtype=np.int64) for k, v in meta.items()})
    return tensors


def activations(
    model: ChatModel, examples: list[Example], sites: list[str] | str, position: str = "last_prompt",
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """`{site: [n_examples, d] float32}` at one named single-row position, in memory and in example order.

    The same computation as a store's shard (`compute_shard`, hooks backend, fp32), for sets small
    enough to hold: a gate's decisions on a test set, a chat's score in the playground.

    Example:
        >>> activations(model, examples[:2], "blocks.3.hook_resid_post")["blocks.3.hook_resid_post"].shape  # doctest: +SKIP
        (2, 576)
    """
    if not examples:
        raise ValueError("no examples to run")
    pos = parse_positions([position])[0]
    if not pos.one_row:
        raise ValueError(f"activations() reads one row per example; position {position!r} has one per token")
    config = resolve_config(model, sites, [position], CaptureConfig((), (), batch_size=batch_size))
    encoded = validate(model, examples, [pos])
    tensors = compute_shard(model, examples, encoded, ShardRange(0, 0, len(examples)), config, make_backend("hooks"))
    order = np.argsort(tensors["example_index"], kind="stable")
    if not np.array_equal(tensors["example_index"][order], np.arange(len(examples))):
        raise ValueError(f"position {position!r} does not apply to every example")
    return {site: tensors[site][order] for site in config.sites}


def capture(
    model: ChatModel,
    examples: list[Example],
    sites: list[str] | str,
    positions: list[str] | str,
    out_dir: str | Path,
    backend: str = "hooks",
    config: CaptureConfig | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    log: Callable[[str], None] | None = None,
) -> ActivationStore:
    """Cache `sites` x `positions` of `examples` into a store at `out_dir`.

    Args:
        model: the loaded ChatModel.
        examples: records to run (their order is the store's order).
        sites: TransformerLens names; `blocks.*.hook_resid_post` expands.
        positions: named positions (see interp.capture.positions).
        out_dir: the store folder (usually artifacts/<run>/activations).
        backend: "hooks" (default), "nnsight" or "tl".
        config: dtype, batch and shard sizes, padding side.
        overwrite: replace a store made with another configuration.
        progress: called after each batch with (examples, tokens) done.
        log: told about each repair a resume makes (a removed temp file, a damaged shard recomputed).

    A complete store with the same configuration is verified shard by shard
    (size, header, rows, sha256) and returned, its damaged shards recomputed; an
    incomplete one is verified and resumed; one with another configuration is refused
    unless `overwrite`. `interp.capture.distributed.capture_on_ray` writes the same store with Ray workers.
    """
    config = resolve_config(model, sites, positions, config)
    folder = Path(out_dir)
    encoded = validate(model, examples, parse_positions(list(config.positions)))
    manifest = open_store(folder, examples, manifest_seed(model, examples, config, backend), overwrite, log)
    if manifest["complete"]:
        return ActivationStore(folder)
    engine = make_backend(backend)
    for shard in pending_shards(manifest):
        tensors = compute_shard(model, examples, encoded, shard, config, engine, progress)
        manifest = add_shard(folder, manifest, write_capture_shard(folder, shard, tensors))
    return commit(folder, manifest)


__all__ = [
    "CaptureConfig", "activations", "capture", "compute_shard", "examples_hash", "make_batch", "manifest_seed", "resolve_config",
    "validate", "POSITIONS",
]
