"""Head-level steering: rank attention heads on the TRAIN split, build an ITI-style shift vector.

Data: the answer task's training pairs of the `user_minus_third_party` method
(`steering.methods.statistics.training_examples`): the user suggests a wrong answer
(`user_wrong`) vs the same wrong answer attributed to a third party
(`third_party_wrong`, the control). Only the train side of the split is read.

**Shift.** For head h of layer L, the mass-mean shift in head space (hook_z,
`[d_head]`) at the last prompt token (`last_prompt`, which predicts the
answer's first token):

    shift_h = mean z_h | user_wrong  -  mean z_h | third_party_wrong

It points toward deference, like every vector of `steering.methods.statistics` (toward
the positive class): NEGATIVE strengths steer away, strength -1 moves each
chosen head by the full mass-mean shift toward the control.

**Ranking score** (`attribution`, the default): the first-order change of the
evaluation's own margin (mean log-prob of the correct answer text minus that
of the suggested one, content scoring as the sweep scores it) under user pressure
when head h alone receives the intervention at strength -1:

    attribution_h = mean over pairs of  (-shift_h) . sum_{t steered} d margin / d z_h[t]

with the gradient taken on the user_wrong run, summed over the positions the
steering reaches ("generated": the last prompt token and the answer's
tokens). Why this score: it ranks heads by what the head intervention itself
is expected to do to the quantity the sweep measures, through every path
(direct and via later layers), in one forward and backward per pair
(attribution patching, Nanda 2023; Kramar et al. 2024). A probe accuracy (as
in ITI) measures whether the condition is decodable from a head, not whether
moving the head changes the answer; `proj_diff` or DLA see only the direct
path. It is linear: for heads with large shifts, check the top of the table
with real interventions (`steering.methods.head_steer.steer_heads`). `shift_norm` (the
shift's size in residual units, `|W_O[:, h] @ shift_h|`) ranks by size alone.

**Vector.** A constant shift of z_h is o_proj times a vector, so the shift of
the chosen heads is exactly the residual vector `sum_h W_O[:, h] @ shift_h`
added at `blocks.L.hook_attn_out` (one direction per layer with a chosen head),
a `SteeringVector(site_kind="hook_attn_out", method="heads_iti")` that
`steering.steer` and the sweep use like any vector.

Export (see also `steering.methods.head_fold`):
- native safetensors: exact (`steer()` at hook_attn_out);
- folded checkpoint: exactly an o_proj bias of `strength * v_L` (positions
  "all" only): the attention output, which the layer's MLP then reads, as in
  the model. `steering.export.folded` currently refuses site_kind
  hook_attn_out (it folds into down_proj, i.e. hook_resid_post); `head_fold`
  writes the o_proj fold;
- llama.cpp control vector: only approximate. llama.cpp adds `direction.L` to
  the block's OUTPUT (hook_resid_post): the same vector there skips layer L's
  MLP, which in the real intervention reads the shifted attention output.
  `steering.export.gguf_cvec` refuses site_kind hook_attn_out (correctly);
  exporting would need re-measuring it as a hook_resid_post vector;
- scaling or ablating a head is input-dependent: no vector, only a folded
  checkpoint with the head's o_proj columns scaled.

Measured on SmolLM2-135M (48 train pairs, split seed 0 / 0.3, 30 held-out
questions, positions "generated"): top heads L20H3, L17H1, L17H0, L23H3,
L18H4, L18H5, L21H7, L14H5 (L23H0, the head patching found copying the
suggested answer from the neutral run, ranks 256/270: it copies for the user
and the third party alike). The K=8 vector at strength -2: user-wrong accuracy
0.23 -> 0.30, user-right 0.97 -> 0.90, kl_all 0.041; at -4: 0.33, 0.87, 0.146.
Ranking costs one forward and backward per choice of each pair (~160 s for
48 pairs on 2 busy cores).

Example:
    >>> ranking = rank_heads(model, PairSplit(seed=0, test_fraction=0.3), n_pairs=48, seed=0)  # doctest: +SKIP
    >>> ranking.table.head(8)[["name", "attribution", "shift_norm"]]  # doctest: +SKIP
    >>> v = head_shift_vector(model, ranking, k=8)  # doctest: +SKIP
    >>> with steer(model, v, -1.0, positions="generated", prompt_lengths=lengths): ...  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interp.capture.collect import examples_hash
from interp.models.loading import ChatModel
from interp.stats import grouped_bootstrap_ci
from interp.store.tagged_file import read_tagged, write_tagged
from interp.tasks.example import Example
from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.splits import PairSplit, pairs_hash
from steering.methods.head_grads import HeadGrads, collect_head_grads
from steering.methods.head_steer import Head, HeadEdit, head_shift_residual
from steering.methods.statistics import VECTOR_METHODS, training_examples

METHOD = "heads_iti"
SITE_KIND = "hook_attn_out"
USER, CONTROL = "user_wrong", "third_party_wrong"
#: ranking score -> its description (every score: larger = more useful to steer, ranked first)
SCORES = {
    "attribution": "first-order change of the user-wrong margin (mean logprob correct - suggested) when the head "
                   "alone gets the shift toward the control (strength -1), summed over the steered positions",
    "shift_norm": "|W_O[:, h] @ shift_h|: size of the head's mass-mean shift in residual units",
}
SCALE = "strength 1 = the full mass-mean shift (mean z | user_wrong - mean z | third_party_wrong) of each chosen head"
RANKING_FORMAT = "workbench.head_ranking/1"
SIGN = "points toward the user's suggestion (user_wrong): negative strengths steer toward the third-party control"


@dataclass(frozen=True, eq=False)
class HeadRanking:
    """Heads ranked on the train side of a split, with the shifts a vector is built from.

    Args:
        table: one row per head, best first: layer, head, name, rank, attribution (mean and 95% CI over pairs),
            shift_norm.
        shifts: `[n_layers, n_heads, d_head]` mean z (user_wrong) - mean z (third_party_wrong) at last_prompt.
        resid_norms: layer -> mean residual norm (hook_resid_post, last_prompt, both conditions).
        pair_ids: the training pairs read.
        meta: provenance: split, train_pairs_hash, n_pairs, seed, score, positions, dataset hash, model hash.
    """

    table: pd.DataFrame
    shifts: np.ndarray
    resid_norms: dict[int, float]
    pair_ids: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """One safetensors file: tensor `shifts`, the table, norms, pairs and meta as JSON records; atomic."""
        header = {"format": RANKING_FORMAT, "table": self.table.to_dict(orient="list"),
                  "columns": list(self.table.columns), "pair_ids": list(self.pair_ids),
                  "resid_norms": {str(k): v for k, v in self.resid_norms.items()}, "meta": self.meta}
        return write_tagged(path, {"shifts": np.ascontiguousarray(self.shifts, dtype=np.float32)}, {"workbench": header})

    @classmethod
    def load(cls, path: str | Path) -> HeadRanking:
        records, tensors = read_tagged(path, "head ranking")
        header = records.get("workbench")
        if not isinstance(header, dict) or header.get("format") != RANKING_FORMAT:
            raise ValueError(f"{path}: not a head ranking (expected format {RANKING_FORMAT!r})")
        return cls(pd.DataFrame(header["table"])[header["columns"]], tensors["shifts"],
                   {int(k): float(v) for k, v in header["resid_norms"].items()}, tuple(header["pair_ids"]),
                   header["meta"])

    def top(self, k: int, layers: Sequence[int] | None = None) -> list[Head]:
        """The first k (layer, head) whose score is positive (best first), optionally only in `layers`.

        A head with a negative attribution is expected to INCREASE deference when shifted toward the control,
        so it never enters a top-k.
        """
        table = self.table[self.table[str(self.meta.get("score", "attribution"))] > 0]
        if layers is not None:
            table = table[table.layer.isin(list(layers))]
        return [(int(r.layer), int(r.head)) for r in table.head(k).itertuples()]


def head_examples(split: PairSplit, n_pairs: int | None, seed: int) -> list[Example]:
    """The training examples: user_wrong and third_party_wrong of the answer task, train side only.

    Example:
        >>> exs = head_examples(PairSplit(0, 0.3), n_pairs=3, seed=0)
        >>> len(exs), sorted({e.condition for e in exs})
        (6, ['third_party_wrong', 'user_wrong'])
    """
    examples = training_examples(VECTOR_METHODS["user_minus_third_party"], split, n_pairs, seed)
    if any(split.is_test(ex.pair_id) for ex in examples):
        raise ValueError("head ranking: training examples include test-split pairs")
    return examples


def score_table(grads: HeadGrads, shifts: np.ndarray, w_o: np.ndarray, rank_by: str = "attribution") -> pd.DataFrame:
    """The ranked table from collected gradients and shifts (pure).

    Args:
        grads: per-pair gradients of the user-wrong margin (`collect_head_grads`).
        shifts: `[n_layers, n_heads, d_head]` mean user - mean control.
        w_o: `[n_layers, d_model, n_heads, d_head]` o_proj weights.
        rank_by: a key of SCORES.
    """
    if rank_by not in SCORES:
        raise ValueError(f"unknown head score {rank_by!r}; choose from {', '.join(SCORES)}")
    per_pair = np.einsum("plhk,lhk->plh", grads.grad, -shifts)  # [pairs, n_layers, n_heads]
    resid = np.einsum("ldhk,lhk->lhd", w_o, shifts)  # [n_layers, n_heads, d_model]
    norms = np.linalg.norm(resid, axis=-1)  # [n_layers, n_heads]
    groups = np.array(grads.pair_ids)
    rows = []
    for layer in range(shifts.shape[0]):
        for head in range(shifts.shape[1]):
            ci = grouped_bootstrap_ci(per_pair[:, layer, head], groups)
            rows.append({"layer": layer, "head": head, "name": f"L{layer}H{head}", "attribution": ci.estimate,
                         "attribution_lo": ci.low, "attribution_hi": ci.high, "shift_norm": float(norms[layer, head])})
    table = pd.DataFrame(rows).sort_values(rank_by, ascending=False, kind="stable").reset_index(drop=True)
    table.insert(3, "rank", np.arange(1, len(table) + 1))
    return table


def o_proj_weights(model: ChatModel) -> np.ndarray:
    """`[n_layers, d_model, n_heads, d_head]` o_proj weights as float64."""
    from interp.analysis.heads import o_proj

    return np.stack([o_proj(model, layer).weight.detach().double().cpu().numpy()
                     .reshape(model.d_model, model.n_heads, model.d_head) for layer in range(model.n_layers)])


def rank_heads(
    model: ChatModel, split: PairSplit, n_pairs: int | None = 64, seed: int = 0, *,
    rank_by: str = "attribution", positions: str = "generated", batch_size: int = 8, progress: bool = False,
) -> HeadRanking:
    """Rank every head on the TRAIN side of `split` (user_wrong vs third_party_wrong, answer task).

    Args:
        model: the model.
        split: train/test split; only train pairs are read.
        n_pairs: training pairs (the seeded subset `user_minus_third_party` uses); None: all.
        seed: task generation and subset seed.
        rank_by: a key of SCORES ("attribution" or "shift_norm").
        positions: where the attribution sums the gradient: "generated" (last prompt token and answer tokens,
            the sweep's default) or "all".
        batch_size: sequences per forward and backward pass.
        progress: show a progress bar.

    Example:
        >>> r = rank_heads(model, PairSplit(0, 0.3), n_pairs=32, seed=0)  # doctest: +SKIP
        >>> r.top(3), r.meta["train_pairs_hash"][:8]  # doctest: +SKIP
    """
    if rank_by not in SCORES:
        raise ValueError(f"unknown head score {rank_by!r}; choose from {', '.join(SCORES)}")
    examples = head_examples(split, n_pairs, seed)
    if not examples:
        raise ValueError("head ranking: no training examples on the train side of the split")
    user = [ex for ex in examples if ex.condition == USER]
    control = {ex.pair_id: ex for ex in examples if ex.condition == CONTROL}
    user = [ex for ex in user if ex.pair_id in control]
    grads = collect_head_grads(model, user, [control[ex.pair_id] for ex in user], positions=positions,
                               batch_size=batch_size, progress=progress)
    shifts = (grads.z_user.mean(0) - grads.z_control.mean(0)).astype(np.float64)  # [n_layers, n_heads, d_head]
    table = score_table(grads, shifts, o_proj_weights(model), rank_by)
    meta = {
        "task": "answer", "positive": USER, "negative": CONTROL, "position": "last_prompt",
        "score": rank_by, "score_description": SCORES[rank_by], "attribution_positions": positions,
        "split": split.to_dict(), "train_pairs_hash": pairs_hash(grads.pair_ids), "n_train_pairs": len(grads.pair_ids),
        "seed": seed, "dataset_hash": examples_hash(examples), "model_hash": model.weights_hash,
        "margin_user_wrong": float(grads.margin.mean()),
    }
    return HeadRanking(table, shifts.astype(np.float32), grads.resid_norms, grads.pair_ids, meta)


def head_edit(model: ChatModel, ranking: HeadRanking, heads: Sequence[Head]) -> HeadEdit:
    """The ranking's shifts of `heads` as a HeadEdit on hook_z (same sign and scale as `head_shift_vector`)."""
    return HeadEdit(model.n_heads, model.d_head, shifts={h: ranking.shifts[h[0], h[1]] for h in heads})


def head_shift_vector(
    model: ChatModel, ranking: HeadRanking, k: int | None = 8, heads: Sequence[Head] | None = None,
    layers: Sequence[int] | None = None,
) -> SteeringVector:
    """The mass-mean shift of the top-k heads (or `heads`) as a residual vector at `hook_attn_out`.

    The vector has one direction per layer holding a chosen head; a sweep cell that steers one layer
    (`SteerSpec(vector, (layer,))`) would steer only that layer's heads: steer all of `vector.layers`
    together, or pass `layers=[L]` to take the top k heads of layer L only.

    Args:
        model: the model the ranking was made on (gives W_O).
        ranking: from `rank_heads`.
        k: take the ranking's first k heads with a positive score (ignored when `heads` is given).
        heads: explicit (layer, head) list.
        layers: with k, choose only among heads of these layers.

    Example:
        >>> v = head_shift_vector(model, ranking, k=8)  # doctest: +SKIP
        >>> v.site_kind, v.meta["heads"][:2]  # doctest: +SKIP
        ('hook_attn_out', ['L23H0', 'L20H4'])
    """
    chosen = list(heads) if heads is not None else ranking.top(int(k or 0), layers)
    if not chosen:
        raise ValueError("head_shift_vector: no heads chosen (k=0, an empty list, or no positive score there)")
    edit = head_edit(model, ranking, chosen)
    directions = head_shift_residual(model, edit)
    scores = ranking.table.set_index("name")
    meta = {
        **{key: value for key, value in ranking.meta.items() if key not in ("dataset_hash", "model_hash")},
        "heads": [f"L{layer}H{head}" for layer, head in chosen], "k": len(chosen),
        "head_scores": {f"L{layer}H{head}": float(scores.loc[f"L{layer}H{head}", ranking.meta["score"]])
                        for layer, head in chosen},
        "scale": SCALE, "sign": SIGN,
        "description": "ITI-style shift of the chosen heads' hook_z by their mass-mean shift, exported through o_proj",
        "export": "exact: native, o_proj bias (positions all); approximate only: llama.cpp (adds after the MLP)",
    }
    return SteeringVector(
        directions, method=METHOD, d_model=model.d_model, site_kind=SITE_KIND, model_hash=model.weights_hash,
        arch=model.arch, dataset_hash=str(ranking.meta.get("dataset_hash", "")),
        resid_norms={layer: ranking.resid_norms[layer] for layer in directions if layer in ranking.resid_norms},
        positions="all", meta=meta,
    )


def build_heads_vector(
    model: ChatModel, split: PairSplit, k: int = 8, n_pairs: int | None = 64, seed: int = 0,
    rank_by: str = "attribution",
) -> SteeringVector:
    """Rank heads on the train side of `split` and return the top-k shift vector (one call for the sweep).

    Example:
        >>> v = build_heads_vector(model, PairSplit(0, 0.3), k=8, n_pairs=48)  # doctest: +SKIP
    """
    return head_shift_vector(model, rank_heads(model, split, n_pairs, seed, rank_by=rank_by), k=k)
