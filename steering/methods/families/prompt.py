"""The prompt family: the prompting baseline, measured in the same cells as every vector.

`prompt:<name>` is a system prompt (`interp.tasks.templates.SYSTEM_INSTRUCTIONS`: the model's own default system
prompt plus an instruction such as "The user's suggestion may be wrong: answer with what is true.") and no
vector: its vector is zero, its one cell is strength 0 with the prompt, measured against the unprompted model.
`prompt:<name>+<method>` is that prompt together with another method's vector (its curve, strengths and layers;
the registry composes them). Only the system turn changes (a test checks it); `prompt:default` writes out the
model's own default system prompt, a control that must change nothing.

Example:
    >>> FAMILY.parse("prompt:skeptical").options["instruction"][:25]
    "The user's suggestion may"
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from interp.models.chat import default_system_prompt, with_instruction
from interp.tasks.templates import SYSTEM_INSTRUCTIONS
from steering.artifacts.steering_vector import SteeringVector
from steering.evaluation.splits import pairs_hash as hash_pairs
from steering.methods.family import BuildRequest, Family, Method

if TYPE_CHECKING:
    from steering.artifacts.steerable import Steerable

#: the vector meta key a prompted vector carries its system-prompt instruction under
PROMPT_KEY = "system_instruction"


def system_prompt(tokenizer: object, instruction: str) -> str:
    """The system prompt a prompted cell renders: the model's default one, then the instruction.

    Example:
        >>> system_prompt(smollm2.tokenizer, "Be honest.")  # doctest: +SKIP
        'You are a helpful AI assistant named SmolLM, trained by Hugging Face. Be honest.'
    """
    return with_instruction(default_system_prompt(tokenizer), instruction)


def parse_prompt(spec: str) -> tuple[str, str] | None:
    """(name, instruction) of a `prompt:<name>` spec; None when `spec` is not one.

    Example:
        >>> parse_prompt("prompt:default"), parse_prompt("caa")
        (('default', ''), None)
    """
    if not spec.startswith("prompt:"):
        return None
    name = spec[len("prompt:"):]
    if name not in SYSTEM_INSTRUCTIONS:
        raise ValueError(f"method {spec!r}: unknown system prompt {name!r}; choose from "
                         f"{', '.join(SYSTEM_INSTRUCTIONS)} (prompt:<name>, or prompt:<name>+<method>)")
    return name, SYSTEM_INSTRUCTIONS[name]


class Prompt(Family):
    """A system prompt and no vector (one cell); `prompt:<name>+<method>` adds the prompt to a method's curve."""

    name = "prompt"
    strengths = (0.0,)
    scale = "no vector: the cell is the system prompt alone (strength 0)"

    def parse(self, spec: str) -> Method | None:
        parsed = parse_prompt(spec.strip())
        if parsed is None:
            return None
        name, instruction = parsed
        return Method(f"prompt:{name}", self.name, f"system prompt {name!r}: {instruction or '(the default)'}",
                      {"prompt": name, "instruction": instruction})

    def cell_layers(self, method: Method, layers: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        return ((int(layers[0]),),)  # no vector: one curve, whatever the layers

    def positions(self, method: Method, positions: Sequence[str]) -> tuple[str, ...]:
        return (positions[0],)

    def build(self, method: Method, request: BuildRequest) -> SteeringVector:
        model = request.model
        layer = self.cell_layers(method, request.layers)[0][0]
        return SteeringVector({layer: np.zeros(model.d_model, np.float32)}, method=method.name,
                              d_model=model.d_model, model_hash=model.weights_hash, arch=model.arch,
                              meta={PROMPT_KEY: method.options["instruction"], "prompt": method.options["prompt"],
                                    "split": request.split.to_dict(), "seed": request.seed,
                                    "train_pairs_hash": hash_pairs([])})

    def same_build(self, old: Steerable, method: Method, request: BuildRequest, pairs_hash: str) -> bool:
        return super().same_build(old, method, request, pairs_hash) and \
            old.meta.get(PROMPT_KEY) == method.options["instruction"]


FAMILY = Prompt()
