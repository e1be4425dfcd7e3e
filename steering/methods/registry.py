"""The one registry of vector methods: a table of families (`FAMILIES`), one object each in its own module.

| family       | methods                                                                  | module |
| ------------ | ------------------------------------------------------------------------ | ------ |
| `file`       | `file:PATH[#L]`: a vector another tool (or run) wrote                    | `families.vector_file` |
| `prompt`     | `prompt:<name>`: a system prompt, no vector (the prompting baseline)     | `families.prompt` |
| `learned`    | `learned[:target][@positions][#L+L][/task+task]`                          | `families.learned` |
| `gated`      | `gated[:target][@positions][#L+L][/task+task]`: learned through the gate | `families.gated` |
| `selfgated`  | `selfgated[...]` (same grammar): the vector and its gate learned together | `families.selfgated` |
| `lowrank`    | `lowrank[...][%rank]` (same grammar): a learned low-rank edit, no vector | `families.lowrank` |
| `heads`      | `heads[@k]`                                                              | `families.heads` |
| `copyheads`  | `copyheads[@K]`: the heads that copy a suggestion, mean-ablated behind the gate (no vector) | `families.copyheads` |
| `statistics` | `caa`, `user_minus_third_party`, `opinion_minus_neutral`, `<probe>[:<source>]` (the catch-all) | `families.statistics` |

Add a family: a module with one `steering.methods.family.Family` subclass (parse its names, name its training
pairs, build its vector from the TRAIN side of the split, say whether a saved one was built the same way, its
default strengths, layers and positions), and one line in `FAMILIES`. The sweep, the CLI and the exports only
call the functions below. Every vector points toward sycophancy: negative strengths steer away. A family builds a
`steering.artifacts.steerable.Steerable`: a vector, or (the low-rank family) a low-rank edit, applied at strength 1 as
trained.

`prompt:<name>+<method>` composes a system prompt with any method: the method's own vector (built, or reused,
under its own name), its family's curve, with the prompt's instruction in the vector's meta.

Example:
    >>> resolve_method("learned").name, resolve_method("learned:neutral@all").options["positions"]
    ('learned:correct', 'all')
    >>> resolve_method("heads@4").family, resolve_method("caa").family, resolve_method("file:v.npy#3").family
    ('heads', 'statistics', 'file')
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from steering.artifacts.steerable import Steerable, load_steerable
from steering.evaluation.splits import pairs_hash
from steering.methods.families import (
    copyheads,
    gated,
    heads,
    learned,
    lowrank,
    prompt,
    selfgated,
    statistics,
    vector_file,
)
from steering.methods.family import BuildRequest, Family, Method, method_file_stem

#: the families, in the order a method name is tried (the statistics family, a catch-all, comes last)
FAMILIES: tuple[Family, ...] = (
    vector_file.FAMILY,
    prompt.FAMILY,
    learned.FAMILY,
    gated.FAMILY,
    selfgated.FAMILY,
    lowrank.FAMILY,
    heads.FAMILY,
    copyheads.FAMILY,
    statistics.FAMILY,
)

__all__ = ["FAMILIES", "BuildRequest", "Family", "Method", "build_method_vector", "family", "load_or_build_method_vector",
           "method_file_stem", "resolve_method", "same_build", "train_pairs", "vector_family"]


def family(name: str) -> Family:
    """The family object of a name (`Method.family`, a vector's `meta["family"]`).

    Example:
        >>> family("learned").strengths
        (-2.0, -1.5, -1.0, -0.5, 0.5)
    """
    for f in FAMILIES:
        if f.name == name:
            return f
    raise ValueError(f"unknown method family {name!r}; known: {', '.join(f.name for f in FAMILIES)}")


def resolve_method(spec: str) -> Method:
    """The method a name stands for (see the module table); raises ValueError naming the known ones.

    Example:
        >>> m = resolve_method("prompt:skeptical+learned")
        >>> m.name, m.family, m.options["inner"]
        ('prompt:skeptical+learned:correct', 'learned', 'learned:correct')
    """
    spec = spec.strip()
    head, plus, rest = spec.partition("+")
    if plus and prompt.parse_prompt(head) is not None:
        outer, inner = resolve_method(head), resolve_method(rest)
        if inner.family == prompt.FAMILY.name or "inner" in inner.options:
            raise ValueError(f"method {spec!r}: a prompt composes with one method that has a vector")
        return Method(f"{outer.name}+{inner.name}", inner.family, f"{outer.description}, with {inner.description}",
                      {**inner.options, "prompt": outer.options["prompt"], "instruction": outer.options["instruction"],
                       "inner": inner.name})
    errors = []
    for f in FAMILIES:
        try:
            method = f.parse(spec)
        except ValueError as e:
            if f is not FAMILIES[-1]:
                raise
            errors.append(str(e))
            continue
        if method is not None:
            return method
    others = "; ".join(f"{f.name}: see steering.methods.families.{type(f).__module__.rsplit('.', 1)[-1]}"
                       for f in FAMILIES[:-1])
    raise ValueError(f"{errors[0] if errors else f'unknown method {spec!r}'}; other families: {others}")


def train_pairs(method: Method, request: BuildRequest) -> set[str]:
    """The pair ids the method reads to build its vector (all on the train side of the split)."""
    return family(method.family).train_pairs(method, request)


def _with_prompt(vector: Steerable, method: Method) -> Steerable:
    """A composed method's vector: the inner method's, named for the composition, carrying the prompt."""
    return vector.with_record(method=method.name, meta={
        **vector.meta, prompt.PROMPT_KEY: method.options["instruction"], "prompt": method.options["prompt"]})


def build_method_vector(method: Method, request: BuildRequest) -> Steerable:
    """Build the method's vector from the train side of `request.split` (its family's meta recorded)."""
    if "inner" in method.options:
        return _with_prompt(build_method_vector(resolve_method(method.options["inner"]), request), method)
    vector = family(method.family).build(method, request)
    return vector.with_record(meta={**vector.meta, "family": method.family})


def same_build(old: Steerable, method: Method, request: BuildRequest) -> bool:
    """Whether a saved vector was built the way `build_method_vector` would build it now."""
    f = family(method.family)
    return f.same_build(old, method, request, pairs_hash(sorted(f.train_pairs(method, request))))


def load_or_build_method_vector(path: Path, method: Method, request: BuildRequest) -> Steerable:
    """The vector saved at `path` if it was built the same way, else build it and save it (atomically).

    Example:
        >>> v = load_or_build_method_vector(Path("v.safetensors"), resolve_method("learned"),
        ...                                 BuildRequest(model, split, (12,), Path("work")))  # doctest: +SKIP
    """
    if "inner" in method.options:  # the inner method's vector under its own name, then the prompt on top
        inner = resolve_method(method.options["inner"])
        vector = _with_prompt(load_or_build_method_vector(path.with_name(f"{method_file_stem(inner.name)}"
                                                                         ".safetensors"), inner, request), method)
        vector.save(path)
        return vector
    if path.is_file():
        old = load_steerable(path)
        if same_build(old, method, request):
            return old
    vector = build_method_vector(method, request)
    vector.save(path)
    return vector


def vector_family(vector: Steerable) -> str:
    """The family a saved vector came from: its meta's "family", else the family its method name resolves to.

    Example:
        >>> import numpy as np
        >>> from steering.artifacts.steering_vector import SteeringVector
        >>> vector_family(SteeringVector({0: np.ones(2, np.float32)}, method="learned:correct", d_model=2))
        'learned'
    """
    name = vector.meta.get("family")
    if any(f.name == name for f in FAMILIES):
        return str(name)
    try:
        return resolve_method(vector.method).family
    except ValueError:
        return "heads" if vector.method.startswith("heads") else "statistics"


def layer_groups(method: Method, layers: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """The layer groups a sweep steers for `method` (one curve each)."""
    return family(method.family).cell_layers(method, layers)
