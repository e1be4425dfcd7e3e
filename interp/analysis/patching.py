"""Activation patching (clean -> corrupted) and claim-edge knockout, per layer and position.

Design (see `interp.analysis.contrasts` for the alignment):

- **Denoising residual patching.** Run the corrupted prompt (the user
  suggests a wrong answer) and overwrite `blocks.L.hook_resid_post` at one
  position with the clean run's value at the aligned position. Metric: the
  logit difference correct - user at the last prompt position; recovered
  fraction = (patched - corrupt) / (clean - corrupt). Only the shared suffix
  (aligned from the end: instruction + assistant header) is patched:
  positions of the shared prefix are identical in both runs by causality (a
  patch there is exactly 0), and the claim's positions have no clean
  counterpart; their cells are NaN and labelled so.
- **Attention / MLP outputs per layer**: `hook_attn_out` / `hook_mlp_out`
  of layer L patched at every suffix position at once.
- **Claim-edge knockout (path-patching-lite).** Which claim tokens matter is
  asked the other way round: in the corrupted run, hide a claim token (as an
  attention key) from every suffix position at every layer, so the answer
  side cannot read it directly; recovered fraction as above. Per layer, hide
  all claim tokens at that layer only ("where the opinion is read"); hiding
  all claim tokens at all layers approximates removing the claim (only the
  rotary offset and the claim tokens' own processing remain), a sanity check
  near 1. Paths that run through later claim tokens are not cut: this
  measures direct claim -> answer-side edges.

Averaging over pairs uses *slots*: claim tokens common to every pair at the
claim's start and end, one slot for the varying middle (the suggested
answer), and the suffix tokens aligned from the end. Fractions are ratios of
means over pairs with cluster-bootstrap intervals (pairs resampled whole).

Example:
    >>> result = run_patching(model, contrasts)  # doctest: +SKIP
    >>> result.tables()["resid"].head()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from interp.analysis.contrasts import Contrast, logit_diff
from interp.analysis.dla import token_text
from interp.analysis.stepping import Edit, Trace, put, rerun, trace
from interp.analysis.summary import ci_fields, recovered_grid_ci
from interp.sites import Site
from interp.store.tagged_file import format_tag, read_tagged, write_tagged

if TYPE_CHECKING:
    from collections.abc import Callable

    from interp.models.loading import ChatModel

CLAIM, VARIES, SUFFIX = "claim", "claim-varies", "suffix"


@dataclass(frozen=True)
class Slot:
    """A position shared across pairs.

    `kind` is claim (`offset` from the claim's start, or from its end when
    negative), claim-varies (the varying middle as a group: from `offset` after
    the claim's start to `tail` before its end) or suffix (`offset` from the
    prompt's end, negative).
    """

    label: str
    kind: str
    offset: int
    tail: int = 0

    def positions(self, c: Contrast) -> list[int]:
        start, end = _claim_span(c)
        if self.kind == CLAIM:
            return [start + self.offset if self.offset >= 0 else end + self.offset]
        if self.kind == VARIES:
            return list(range(start + self.offset, end - self.tail))
        return [len(c.corrupt) + self.offset]


def _claim_span(c: Contrast) -> tuple[int, int]:
    """[start, end) of the positions only the corrupted run has (empty at suffix_start)."""
    only = c.only_corrupt
    return (only[0], only[-1] + 1) if only else (c.suffix_start, c.suffix_start)


def _common_prefix(seqs: list[tuple[int, ...]]) -> int:
    n = min((len(s) for s in seqs), default=0)
    k = 0
    while k < n and all(s[k] == seqs[0][k] for s in seqs):
        k += 1
    return k


def slot_layout(model: ChatModel, contrasts: Sequence[Contrast]) -> list[Slot]:
    """Slots shared by all `contrasts`: claim head, varying middle, claim tail, suffix.

    Example:
        >>> [s.label for s in slot_layout(model, contrasts)][-3:]  # doctest: +SKIP
        ['<|im_start|>', 'assistant', '⏎']
    """
    if not contrasts:
        return []
    middles = [tuple(c.corrupt[a:b]) for c in contrasts for a, b in [_claim_span(c)]]
    head = _common_prefix(middles)
    tail = min(_common_prefix([m[::-1] for m in middles]), min(len(m) for m in middles) - head)
    first = middles[0]
    slots = [Slot(token_text(model, first[k]), CLAIM, k) for k in range(head)]
    if any(len(m) > head + tail for m in middles):
        slots.append(Slot("‹answer›", VARIES, head, tail))
    slots += [Slot(token_text(model, first[len(first) - tail + k]), CLAIM, k - tail) for k in range(tail)]
    n_suffix = min(len(c.corrupt) - c.suffix_start for c in contrasts)
    for k in range(n_suffix, 0, -1):
        tokens = {c.corrupt[-k] for c in contrasts}
        label = token_text(model, contrasts[0].corrupt[-k]) if len(tokens) == 1 else f"[-{k}]"
        slots.append(Slot(label, SUFFIX, -k))
    return slots


@dataclass(frozen=True)
class PatchingResult:
    """Logit differences (correct - user) of every patched and knocked-out run, per pair.

    Args:
        pair_ids: [pairs].
        slots: position slots (columns).
        clean: [pairs] clean run.
        corrupt: [pairs] corrupted run.
        resid: [pairs, n_layers, slots] residual patched at (layer, slot); NaN for claim slots.
        attn: [pairs, n_layers] attention output of the layer patched at all suffix positions.
        mlp: [pairs, n_layers] MLP output, likewise.
        knock_slot: [pairs, slots] claim slot hidden from the suffix at all layers; NaN for suffix slots.
        knock_layer: [pairs, n_layers] all claim tokens hidden from the suffix at one layer.
        knock_all: [pairs] all claim tokens hidden from the suffix at all layers.
    """

    pair_ids: tuple[str, ...]
    slots: tuple[Slot, ...]
    clean: np.ndarray
    corrupt: np.ndarray
    resid: np.ndarray
    attn: np.ndarray
    mlp: np.ndarray
    knock_slot: np.ndarray
    knock_layer: np.ndarray
    knock_all: np.ndarray

    def _fractions(self, patched: np.ndarray) -> list[dict[str, float]]:
        """Per column of `patched` [pairs, cells]: recovered fraction, its CI, the mean patched LD."""
        grid = recovered_grid_ci(patched, self.clean, self.corrupt, np.array(self.pair_ids))
        with np.errstate(invalid="ignore"):
            means = [float(np.nanmean(col)) if np.isfinite(col).any() else float("nan") for col in patched.T]
        return [{"fraction": float(e), "fraction_lo": float(lo), "fraction_hi": float(hi), "patched_ld": m}
                for (e, lo, hi), m in zip(grid, means, strict=True)]

    def tables(self) -> dict[str, pd.DataFrame]:
        """`resid` (layer x slot), `layers` (attn, mlp, knockout per layer), `claim` (knockout per
        claim slot), `pairs` (raw logit differences)."""
        n_pairs, n_layers, n_slots = self.resid.shape
        cells = self._fractions(self.resid.reshape(n_pairs, n_layers * n_slots))
        resid = [{"layer": layer, "slot": j, "label": s.label, "kind": s.kind, **cells[layer * n_slots + j]}
                 for layer in range(n_layers) for j, s in enumerate(self.slots)]
        per_layer = self._fractions(np.concatenate([self.attn, self.mlp, self.knock_layer], axis=1))
        layers = [{"layer": layer, "component": name, **per_layer[i * n_layers + layer]}
                  for i, name in enumerate(("attn", "mlp", "knockout")) for layer in range(n_layers)]
        knocks = self._fractions(np.concatenate([self.knock_slot, self.knock_all[:, None]], axis=1))
        claim = [{"slot": j, "label": s.label, "kind": s.kind, **knocks[j]}
                 for j, s in enumerate(self.slots) if s.kind != SUFFIX]
        claim.append({"slot": -1, "label": "all claim tokens", "kind": "all", **knocks[-1]})
        pairs = pd.DataFrame({"pair_id": self.pair_ids, "clean_ld": self.clean, "corrupt_ld": self.corrupt,
                              "knock_all_ld": self.knock_all})
        return {"resid": pd.DataFrame(resid), "layers": pd.DataFrame(layers), "claim": pd.DataFrame(claim),
                "pairs": pairs}

    def summary(self) -> dict[str, Any]:
        groups = np.array(self.pair_ids)
        return {"n_pairs": len(self.pair_ids),
                **ci_fields("clean_ld", self.clean, groups), **ci_fields("corrupt_ld", self.corrupt, groups),
                **ci_fields("claim_effect", self.clean - self.corrupt, groups),
                "knock_all": self._fractions(self.knock_all[:, None])[0]}


@dataclass(frozen=True)
class PairPatching:
    clean: float
    corrupt: float
    resid: np.ndarray  # [n_layers, slots]
    attn: np.ndarray  # [n_layers]
    mlp: np.ndarray  # [n_layers]
    knock_slot: np.ndarray  # [slots]
    knock_layer: np.ndarray  # [n_layers]
    knock_all: float


def resid_patch_edits(clean: Trace, c: Contrast, layers: Sequence[int], positions: Sequence[int]) -> list[Edit]:
    """One edit per layer: `blocks.L.hook_resid_post` at `positions` (corrupted indices) <- clean.

    Example:
        >>> edits = resid_patch_edits(clean_trace, contrast, [0, 1], [len(contrast.corrupt) - 1])  # doctest: +SKIP
    """
    return [Edit(resid_at=layer + 1, resid={p: clean.resid[layer + 1, c.align[p]] for p in positions})
            for layer in layers]


def patch_contrast(model: ChatModel, c: Contrast, slots: Sequence[Slot]) -> PairPatching:
    """Every patch and knockout of one pair (see the module docstring).

    Example:
        >>> patch_contrast(model, contrasts[0], slot_layout(model, contrasts)).resid.shape  # doctest: +SKIP
    """
    n = model.n_layers
    kinds = ("hook_attn_out", "hook_mlp_out")
    clean = trace(model, c.clean, sites=[Site(layer, k) for layer in range(n) for k in kinds])
    bad = trace(model, c.corrupt)

    def ld(logits: torch.Tensor) -> np.ndarray:
        return logit_diff(logits, c.correct_token, c.user_token).numpy()

    resid = np.full((n, len(slots)), np.nan)
    for j, slot in enumerate(slots):
        if slot.kind == SUFFIX:
            (p,) = slot.positions(c)
            resid[:, j] = ld(rerun(model, bad, resid_patch_edits(clean, c, range(n), [p]), start=p))
    s = c.suffix_start
    suffix = list(range(s, len(c.corrupt)))
    partners = [c.align[p] for p in suffix]
    rel = [p - s for p in suffix]
    edits = [Edit(sites={Site(layer, k): put(rel, clean.sites[Site(layer, k)][partners])})
             for k in kinds for layer in range(n)]
    claim_slots = [j for j, slot in enumerate(slots) if slot.kind != SUFFIX and slot.positions(c)]
    claim = c.only_corrupt
    edits += [Edit(blocked={layer: tuple(slots[j].positions(c)) for layer in range(n)}) for j in claim_slots]
    edits += [Edit(blocked={layer: claim}) for layer in range(n)]
    edits.append(Edit(blocked={layer: claim for layer in range(n)}))
    values = ld(rerun(model, bad, edits, start=s)) if s < len(c.corrupt) else np.full(len(edits), np.nan)
    knock_slot = np.full(len(slots), np.nan)
    knock_slot[claim_slots] = values[2 * n: 2 * n + len(claim_slots)]
    tail = values[2 * n + len(claim_slots):]
    return PairPatching(
        clean=float(ld(clean.logits)), corrupt=float(ld(bad.logits)), resid=resid,
        attn=values[:n], mlp=values[n: 2 * n], knock_slot=knock_slot, knock_layer=tail[:n], knock_all=float(tail[n]),
    )


def _pair_key(model: ChatModel, c: Contrast, slots: Sequence[Slot]) -> str:
    """What a cached pair result depends on: weights, both prompts, answer tokens, slots."""
    text = json.dumps([model.weights_hash, c.clean, c.corrupt, c.correct_token, c.user_token,
                       [(s.kind, s.offset, s.tail) for s in slots]])
    return hashlib.sha256(text.encode()).hexdigest()


def _load_pair(path: Path, key: str) -> PairPatching | None:
    if not path.is_file():
        return None
    try:
        records, arrays = read_tagged(path, "patching cache")
    except ValueError:  # a torn or foreign file: recompute
        return None
    if records.get("format") != PAIR_FORMAT or records.get("key") != key:
        return None
    fields: dict[str, Any] = {k: float(v[0]) if v.shape == (1,) and k in _SCALARS else v for k, v in arrays.items()}
    return PairPatching(**fields)


_SCALARS = ("clean", "corrupt", "knock_all")
PAIR_FORMAT = format_tag("patching_pair", 1)


def _save_pair(path: Path, key: str, pair: PairPatching) -> None:
    arrays = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in asdict(pair).items()}
    write_tagged(path, arrays, {"format": PAIR_FORMAT, "key": key})


def run_patching(model: ChatModel, contrasts: Sequence[Contrast],
                 progress: Callable[[int, int], None] | None = None, cache_dir: Path | None = None) -> PatchingResult:
    """`patch_contrast` over all pairs, stacked into a `PatchingResult`; resumable.

    Args:
        model: the model.
        contrasts: the pairs (see `make_contrasts`).
        progress: optional callback `(done, total)` after each pair.
        cache_dir: where finished pairs are kept (safetensors, keyed by the
            weights, prompts and slots); an interrupted run started again
            with the same pairs skips them. None: no cache.

    Example:
        >>> run_patching(model, contrasts).summary()["knock_all"]  # doctest: +SKIP
    """
    slots = slot_layout(model, contrasts)
    per_pair = []
    for i, c in enumerate(contrasts):
        key = _pair_key(model, c, slots)
        path = None if cache_dir is None else cache_dir / f"{key[:24]}.safetensors"
        pair = None if path is None else _load_pair(path, key)
        if pair is None:
            pair = patch_contrast(model, c, slots)
            if path is not None:
                _save_pair(path, key, pair)
        per_pair.append(pair)
        if progress is not None:
            progress(i + 1, len(contrasts))

    def stack(name: str) -> np.ndarray:
        return np.array([getattr(p, name) for p in per_pair], dtype=np.float64)

    return PatchingResult(
        pair_ids=tuple(c.pair_id for c in contrasts), slots=tuple(slots), clean=stack("clean"),
        corrupt=stack("corrupt"), resid=stack("resid"), attn=stack("attn"), mlp=stack("mlp"),
        knock_slot=stack("knock_slot"), knock_layer=stack("knock_layer"), knock_all=stack("knock_all"),
    )
