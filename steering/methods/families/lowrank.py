"""The low-rank family: a learned low-rank edit of the residual stream (LoReFT-style), beside the additive vector.

At the steered layer's `hook_resid_post`, at the steered positions, `h <- h + s * R^T (W h + b - R h)` with `R`
`[r, d_model]` of orthonormal rows (`steering.artifacts.lowrank_edit.LowRankEdit`), trained by the learned vector's loop, with its
objective, data, early stopping, checkpoints and resume (`steering.methods.lowrank_learned`).

Names: `lowrank[:target][@positions][#L+L][/task+task][%rank]`: the learned family's grammar
(`steering.methods.families.learned`), then the rank (rows of R, default 2; `%0` is refused: it edits nothing).
`%` survives the CLI's comma-separated `--method` list. Strength 1 applies the edit as trained (unlike a learned
vector, saved negated: strength -1); a cell's norm, the fits' x axis, is the edit's mean norm on the training rows
at strength 1 times |strength|.

What exports it: the native safetensors export (`workbench export --format safetensors`, read back by
`workbench steer --vector`); GGUF control vectors and folded checkpoints add a constant vector per layer and refuse
it with the reason. The OpenAI server does not serve it.

Example:
    >>> m = FAMILY.parse("lowrank:known@all#8+12/mimicry%4")
    >>> m.name, m.options["rank"], m.options["layers"]
    ('lowrank:known@all#8+12/mimicry%4', 4, (8, 12))
    >>> FAMILY.parse("lowrank").name, FAMILY.parse("learned") is None
    ('lowrank:correct%2', True)
"""

from __future__ import annotations

from steering.artifacts.lowrank_edit import LowRankEdit
from steering.artifacts.steerable import Steerable
from steering.methods.families.learned import Learned, learned_name, parse_learned
from steering.methods.family import BuildRequest, Method
from steering.methods.lowrank_learned import DEFAULT_RANK, learn_lowrank


def parse_rank(spec: str) -> tuple[str, int | None]:
    """(the name without its `%rank`, the rank or None when not given).

    Example:
        >>> parse_rank("lowrank#12%4"), parse_rank("lowrank")
        (('lowrank#12', 4), ('lowrank', None))
    """
    base, pct, rank = spec.strip().partition("%")
    if not pct:
        return base, None
    try:
        value = int(rank)
    except ValueError:
        raise ValueError(f"method {spec!r}: %rank takes an integer like %2") from None
    if value < 1:
        raise ValueError(f"method {spec!r}: rank must be >= 1 (a rank-{value} edit edits nothing)")
    return base, value


def combine_edits(parts: list[LowRankEdit], name: str, meta: dict[str, object]) -> LowRankEdit:
    """One edit holding each part's layers (each trained alone); per-layer metas kept under `meta["layers"]`."""
    first = parts[0]
    return LowRankEdit({layer: e for part in parts for layer, e in part.edits.items()}, method=name,
                       d_model=first.d_model, site_kind=first.site_kind, model_hash=first.model_hash, arch=first.arch,
                       dataset_hash=first.dataset_hash,
                       resid_norms={k: v for part in parts for k, v in part.resid_norms.items()},
                       edit_norms={k: v for part in parts for k, v in part.edit_norms.items()},
                       positions=first.positions, meta={**meta, "layers": {str(p.layers[0]): p.meta for p in parts}})


class LowRank(Learned):
    """Low-rank edits trained by gradient descent on the train split; strength 1 is the trained edit."""

    name = "lowrank"
    strengths = (-0.5, 0.5, 1.0, 1.5, 2.0)
    scale = "strength 1 applies the trained edit; its norm is the edit's mean norm on the training rows"

    def parse(self, spec: str) -> Method | None:
        base, rank = parse_rank(spec)
        options: dict[str, object] | None = parse_learned(base, self.name)
        if options is None:
            return None
        options = {**options, "rank": rank or DEFAULT_RANK}
        trained = f", trained on {', '.join(options['tasks'])}" if options["tasks"] else ""  # type: ignore[arg-type]
        layers = f", one edit over layers {options['layers']}" if options["layers"] else ""
        return Method(f"{learned_name(self.name, options)}%{options['rank']}", self.name,
                      f"rank-{options['rank']} edit learned by gradient descent, target {options['target']}, "
                      f"positions {options['positions']}{layers}{trained}", options)

    def build(self, method: Method, request: BuildRequest) -> Steerable:
        rank = int(method.options["rank"])
        parts = self.train_groups(method, request, lambda config, folder, shown: learn_lowrank(
            request.model, request.split, config, rank, folder, progress=shown))
        if len(parts) == 1 and len(parts[0].layers) > 1:  # one edit trained jointly over several layers
            only = parts[0]
            return only.with_record(method=method.name, meta={**only.meta, "family": self.name})
        return combine_edits(parts, method.name, {"family": self.name, "split": request.split.to_dict(),
                                                  "seed": request.seed, "rank": rank,
                                                  "train_pairs_hash": parts[0].meta["train_pairs_hash"]})


FAMILY = LowRank()
