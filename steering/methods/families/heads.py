"""The heads family: an ITI-style mass-mean shift of the top-k heads of a layer (`steering.methods.heads`).

Example:
    >>> FAMILY.parse("heads@3").options, FAMILY.parse("heads").name
    ({'k': 3}, 'heads@4')
"""

from __future__ import annotations

from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.splits import pairs_hash
from steering.methods.family import BuildRequest, Family, Method, combine_layers, parse_count
from steering.methods.heads import HeadRanking, head_examples, head_shift_vector, rank_heads

DEFAULT_HEADS_K = 4


class Heads(Family):
    """Heads ranked on the train split by attribution; the shift of the top k, stored as a hook_attn_out vector."""

    name = "heads"
    strengths = (-8.0, -4.0, -2.0, -1.0, 1.0)
    scale = "strength -1 moves each chosen head by its full mass-mean shift"

    def parse(self, spec: str) -> Method | None:
        k = parse_count(spec, "heads", DEFAULT_HEADS_K)
        if k is None:
            return None
        return Method(f"heads@{k}", self.name, f"mass-mean shift of the top {k} heads of the steered layer "
                      "(ranked by attribution on the train split), as a hook_attn_out vector", {"k": k})

    def train_pairs(self, method: Method, request: BuildRequest) -> set[str]:
        return {ex.pair_id for ex in head_examples(request.split, request.n_pairs, request.seed)}

    def build(self, method: Method, request: BuildRequest) -> SteeringVector:
        model = request.model
        path = request.folder / "heads" / f"ranking-{request.seed}.safetensors"
        ranking = HeadRanking.load(path) if path.is_file() else None
        expected = pairs_hash(sorted(self.train_pairs(method, request)))
        if ranking is None or ranking.meta.get("train_pairs_hash") != expected or \
                ranking.meta.get("model_hash") != model.weights_hash:
            ranking = rank_heads(model, request.split, request.n_pairs, request.seed)
            ranking.save(path)
        parts = [head_shift_vector(model, ranking, k=method.options["k"], layers=[int(layer)])
                 for layer in request.layers]
        empty = [layer for layer, part in zip(request.layers, parts, strict=True) if not part.layers]
        if empty:
            raise ValueError(f"method {method.name}: no head of layer {empty[0]} has a positive attribution")
        return combine_layers(parts, method.name, {"family": self.name, "split": request.split.to_dict(),
                                                   "seed": request.seed, "train_pairs_hash": expected,
                                                   "k": method.options["k"]})


FAMILY = Heads()
