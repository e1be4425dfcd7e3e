"""Ablating the top-k heads of a ranking against k random heads: is deference carried by a few heads?

For each k and ablation mode ("mean", "zero"), the top-k heads and
`n_random` seeded draws of k heads (uniform over all heads, the same draws
for both modes) are ablated in the clean and corrupted runs of every pair
(see `interp.analysis.heads` for the span and the deference metric).

Example:
    >>> result = ablation_study(model, contrasts, top_heads(table, 20), data.z_mean, ks=(1, 5))  # doctest: +SKIP
    >>> result.summary()[0]["top_delta"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from interp.analysis.contrasts import Contrast
from interp.analysis.heads import Head, Progress, ablated_logit_diffs
from interp.analysis.summary import ci_fields

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


@dataclass(frozen=True)
class AblationConfig:
    k: int
    mode: str
    selection: str  # "top" or "random"
    draw: int  # -1 for top
    heads: tuple[Head, ...]


@dataclass(frozen=True)
class AblationResult:
    """Logit differences under every ablation.

    Args:
        pair_ids: [pairs].
        configs: the ablations (columns of `ld`).
        base: [pairs, 2] LD (correct - user) without ablation (clean, corrupt).
        ld: [pairs, configs, 2] LD under each ablation.
    """

    pair_ids: tuple[str, ...]
    configs: tuple[AblationConfig, ...]
    base: np.ndarray
    ld: np.ndarray

    @property
    def base_deference(self) -> np.ndarray:
        """[pairs] LD(clean) - LD(corrupt): how far the claim moves the model toward the user."""
        return self.base[:, 0] - self.base[:, 1]

    def deference(self, j: int) -> np.ndarray:
        return self.ld[:, j, 0] - self.ld[:, j, 1]

    def table(self) -> pd.DataFrame:
        """One row per ablation: deference, its change (negative = less deference), LD changes."""
        groups = np.array(self.pair_ids)
        rows = []
        for j, cfg in enumerate(self.configs):
            rows.append({
                "k": cfg.k, "mode": cfg.mode, "selection": cfg.selection, "draw": cfg.draw,
                "heads": " ".join(f"L{layer}H{head}" for layer, head in cfg.heads),
                **ci_fields("deference", self.deference(j), groups),
                **ci_fields("delta", self.deference(j) - self.base_deference, groups),
                **ci_fields("delta_clean_ld", self.ld[:, j, 0] - self.base[:, 0], groups),
                **ci_fields("delta_corrupt_ld", self.ld[:, j, 1] - self.base[:, 1], groups),
            })
        return pd.DataFrame(rows)

    def summary(self) -> list[dict[str, Any]]:
        """Per (k, mode): the top-k change with its CI against the random draws' mean, std and range."""
        table = self.table()
        base = float(self.base_deference.mean())
        out = []
        for (k, mode), group in table.groupby(["k", "mode"], sort=True):
            top = group[group.selection == "top"].iloc[0]
            rand = group[group.selection == "random"]["delta"].to_numpy()
            spread = float(rand.std(ddof=1)) if len(rand) > 1 else float("nan")
            out.append({
                "k": int(k), "mode": str(mode), "base_deference": base,
                "top_delta": float(top["delta"]), "top_delta_lo": float(top["delta_lo"]),
                "top_delta_hi": float(top["delta_hi"]),
                "top_fraction_removed": -float(top["delta"]) / base if base else float("nan"),
                "random_delta_mean": float(rand.mean()) if len(rand) else float("nan"),
                "random_delta_std": spread,
                "random_delta_min": float(rand.min()) if len(rand) else float("nan"),
                "random_delta_max": float(rand.max()) if len(rand) else float("nan"),
                "n_random": len(rand),
                "top_vs_random_z": (float(top["delta"]) - float(rand.mean())) / spread if spread else float("nan"),
            })
        return out


def random_heads(n_layers: int, n_heads: int, k: int, rng: np.random.Generator) -> tuple[Head, ...]:
    """k distinct heads drawn uniformly, sorted."""
    flat = rng.choice(n_layers * n_heads, size=k, replace=False)
    return tuple(sorted((int(i) // n_heads, int(i) % n_heads) for i in flat))


def ablation_study(
    model: ChatModel,
    contrasts: Sequence[Contrast],
    ranking: Sequence[Head],
    z_mean: torch.Tensor,
    ks: Sequence[int] = (1, 5, 20),
    modes: Sequence[str] = ("mean", "zero"),
    n_random: int = 8,
    seed: int = 0,
    span: str = "suffix",
    progress: Progress | None = None,
) -> AblationResult:
    """Ablate the top-k of `ranking` and k random heads, for each k and mode.

    Args:
        model: the model.
        contrasts: the pairs.
        ranking: heads, best first (at least max(ks) of them).
        z_mean: [n_layers, n_heads, d_head] mean hook_z (for mean ablation).
        ks: numbers of heads to ablate.
        modes: keys of `interp.analysis.heads.ABLATIONS`.
        n_random: random draws per k.
        seed: seeds the draws.
        span: key of `interp.analysis.heads.SPANS` (where heads are ablated).
        progress: optional callback `(done, total)` per pair.

    Example:
        >>> ablation_study(model, contrasts, [(3, 1), (2, 0)], z_mean, ks=(1,), n_random=2).table()  # doctest: +SKIP
    """
    if max(ks, default=0) > len(ranking):
        raise ValueError(f"ranking has {len(ranking)} heads, fewer than k={max(ks)}")
    rng = np.random.default_rng(seed)
    draws = {k: [random_heads(model.n_layers, model.n_heads, k, rng) for _ in range(n_random)] for k in ks}
    configs: list[AblationConfig] = []
    for k in ks:
        for mode in modes:
            configs.append(AblationConfig(k, mode, "top", -1, tuple(ranking[:k])))
            configs += [AblationConfig(k, mode, "random", d, heads) for d, heads in enumerate(draws[k])]
    jobs = [((), "zero")] + [(cfg.heads, cfg.mode) for cfg in configs]
    ld = ablated_logit_diffs(model, contrasts, jobs, z_mean, span=span, progress=progress)
    return AblationResult(tuple(c.pair_id for c in contrasts), tuple(configs), ld[:, 0], ld[:, 1:])
