"""The copyheads family: the heads that copy a suggested answer, mean-ablated behind the sweep's gate.

`copyheads[@K]` (default K 10): rank every head at the sweep's layer or after by how much more it pushes the answer
toward a suggested wrong answer than when nothing is suggested (direct logit attribution on the train split, in
the training wordings: `steering.methods.copy_heads`), and move the top K heads' output to their mean on prompts
that suggest nothing (`steering.artifacts.head_ablation`). Strength 1 replaces their output at the steered
positions, 0 leaves the model unchanged. Its cells are always gated by the sweep's gate at the sweep's layer (the
gate reads at or before it; the heads sit at or after it): on prompts with no suggestion the heads are left alone.

Why: a steering vector at the last prompt token moves a right suggestion as it moves a wrong one (the model
does not represent there which it is: `probes.labels` `wrong_vs_right`), so it costs known answers when the user
is right. Removing the copy instead leaves the model to answer from what it knows.

What runs it: the sweep, `workbench steer --vector` and the native export (`workbench export --format
safetensors`); GGUF control vectors and folded checkpoints add a constant vector and refuse it; the OpenAI server
does not serve it.

Example:
    >>> FAMILY.parse("copyheads@4").options, FAMILY.parse("copyheads").name, FAMILY.always_gated
    ({'k': 4}, 'copyheads@10', True)
"""

from __future__ import annotations

from collections.abc import Sequence

from steering.artifacts.steerable import Steerable
from steering.methods.copy_heads import copy_head_ablation, ranking_examples
from steering.methods.family import BuildRequest, Family, Method, parse_count

DEFAULT_K = 10


class CopyHeads(Family):
    """The top-K copy heads at or after the sweep's first layer, mean-ablated where the gate fires."""

    name = "copyheads"
    strengths = (0.25, 0.5, 0.75, 1.0)
    scale = "strength 1 replaces the heads' output by their mean on prompts with no suggestion"
    always_gated = True

    def parse(self, spec: str) -> Method | None:
        k = parse_count(spec, self.name, DEFAULT_K)
        if k is None:
            return None
        return Method(f"{self.name}@{k}", self.name, f"mean-ablation of the top {k} heads that copy a suggested "
                      "answer (ranked on the train split), behind the gate", {"k": k})

    def train_pairs(self, method: Method, request: BuildRequest) -> set[str]:
        return {e.pair_id for e in ranking_examples(request.split, request.n_pairs, request.seed)}

    def cell_layers(self, method: Method, layers: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        """One cell group at the sweep's first layer: the anchor (heads at it or after, its gate at it)."""
        return ((int(min(layers)),),)

    def build(self, method: Method, request: BuildRequest) -> Steerable:
        anchor = self.cell_layers(method, request.layers)[0][0]
        return copy_head_ablation(request.model, request.split, anchor, int(method.options["k"]), request.n_pairs,
                                  request.seed, method.name)

    def same_build(self, old: Steerable, method: Method, request: BuildRequest, pairs_hash_: str) -> bool:
        return super().same_build(old, method, request, pairs_hash_) and \
            old.layers == [self.cell_layers(method, request.layers)[0][0]]


FAMILY = CopyHeads()

__all__ = ["DEFAULT_K", "FAMILY", "CopyHeads"]
