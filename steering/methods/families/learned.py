"""The learned family: a vector optimised through the frozen model (`steering.methods.learned`).

Names: `learned[:target][@positions][#L+L+...][/task+task]`: the target (`correct`, `known`, `neutral`,
`third_party`), the positions it trains and is measured at (`generated`, `all`, `prompt`), the layers of ONE
vector trained jointly over several layers (`#8+12+16`; without it, one vector per sweep layer, each trained
alone), and the tasks it trains on (default: the sweep's `--learn-tasks`).

Example:
    >>> m = FAMILY.parse("learned:known@all#8+12/mimicry")
    >>> m.name, m.options["positions"], m.options["layers"], m.options["tasks"]
    ('learned:known@all#8+12/mimicry', 'all', (8, 12), ('mimicry',))
    >>> FAMILY.parse("learned").name, FAMILY.parse("caa") is None
    ('learned:correct', True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tqdm import tqdm

from steering.artifacts.steering_vector import SteeringVector
from steering.methods.family import BuildRequest, Family, Method, combine_layers, method_file_stem
from steering.methods.learned import TARGETS, LearnConfig, learn_vector
from steering.methods.learned_data import ROLES, learning_groups

if TYPE_CHECKING:
    from steering.artifacts.steerable import Steerable

T = TypeVar("T")
#: trains one layer group: (its LearnConfig, its checkpoint folder, a progress callback) -> the trained artifact
GroupTrainer = Callable[[LearnConfig, Path, Callable[[int, dict[str, float]], None]], T]


def parse_learned(spec: str, family: str) -> dict[str, object] | None:
    """The options of a `<family>[:target][@positions][#layers][/tasks]` name (None: not this family's name).

    Example:
        >>> parse_learned("gated:known#3+5", "gated")["layers"]
        (3, 5)
    """
    spec = spec.strip()
    head, slash, task_list = spec.partition("/")
    head, hash_sign, layer_list = head.partition("#")
    base, _, positions = head.partition("@")
    name, colon, target = base.partition(":")
    if name != family:
        return None
    target = target or "correct"
    if target not in TARGETS:
        raise ValueError(f"method {spec!r}: unknown target {target!r}; choose from {', '.join(TARGETS)}")
    positions = positions or "generated"
    try:
        layers = tuple(int(x) for x in layer_list.replace(",", "+").split("+") if x.strip()) if hash_sign else ()
    except ValueError:
        raise ValueError(f"method {spec!r}: #layers takes integers like #8+12+16") from None
    if hash_sign and not layers:
        raise ValueError(f"method {spec!r}: #layers names no layer")
    if len(set(layers)) != len(layers):
        raise ValueError(f"method {spec!r}: a layer appears twice in #{layer_list}")
    tasks = tuple(t for t in task_list.split("+") if t) if task_list else ()
    unknown = [t for t in tasks if t not in ROLES]
    if unknown or (slash and not tasks):
        raise ValueError(f"method {spec!r}: unknown training task {(unknown or [task_list])[0]!r}; "
                         f"choose from {', '.join(ROLES)}")
    LearnConfig(target=target, positions=positions)  # validates the positions
    return {"target": target, "positions": positions, "layers": tuple(sorted(layers)), "tasks": tasks}


def learned_name(family: str, options: dict[str, object]) -> str:
    """The canonical name of a learned-style method (defaults left out)."""
    positions, layers, tasks = options["positions"], options["layers"], options["tasks"]
    return (f"{family}:{options['target']}" + (f"@{positions}" if positions != "generated" else "")
            + (f"#{'+'.join(str(x) for x in layers)}" if layers else "")  # type: ignore[attr-defined]
            + (f"/{'+'.join(tasks)}" if tasks else ""))  # type: ignore[arg-type]


def learn_config(method: Method, learn: LearnConfig | None, layers: Sequence[int], seed: int,
                 n_pairs: int | None) -> LearnConfig:
    """The settings a learned method trains `layers` with: the sweep's base, the method's target, positions and
    (when it names them) tasks.

    Example:
        >>> learn_config(FAMILY.parse("learned/mimicry"), None, [5], 3, 20).tasks
        ('mimicry',)
    """
    base = learn or LearnConfig()
    tasks = method.options.get("tasks") or base.tasks
    return dataclasses.replace(base, layers=tuple(int(x) for x in layers), target=method.options["target"],
                               positions=method.options["positions"], tasks=tasks, seed=seed,
                               n_pairs=n_pairs or base.n_pairs)


class Learned(Family):
    """Vectors trained by gradient descent on the train split; strength -1 is the trained intervention."""

    name = "learned"
    strengths = (-2.0, -1.5, -1.0, -0.5, 0.5)
    scale = "strength -1 adds the trained vector"

    def parse(self, spec: str) -> Method | None:
        options = parse_learned(spec, self.name)
        if options is None:
            return None
        trained = f", trained on {', '.join(options['tasks'])}" if options["tasks"] else ""  # type: ignore[arg-type]
        layers = f", one vector over layers {options['layers']}" if options["layers"] else ""
        return Method(learned_name(self.name, options), self.name,
                      f"vector learned by gradient descent, target {options['target']}, positions "
                      f"{options['positions']}{layers}{trained}", options)

    def train_pairs(self, method: Method, request: BuildRequest) -> set[str]:
        c = learn_config(method, request.learn, [0], request.seed, request.n_pairs)
        train, val = learning_groups(request.split, c.tasks, c.n_pairs, request.seed, c.wording,
                                     c.exclude_categories, c.val_fraction)
        return {g.pair_id for g in (*train, *val)}

    def cell_layers(self, method: Method, layers: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        own = method.options.get("layers")
        return (tuple(own),) if own else super().cell_layers(method, layers)

    def positions(self, method: Method, positions: Sequence[str]) -> tuple[str, ...]:
        """Measured where it was trained: `learned@all` (the llama.cpp vector) at every position."""
        trained = method.options["positions"]
        return tuple(positions) if trained == "generated" else (trained,)

    def train_groups(self, method: Method, request: BuildRequest, train: GroupTrainer[T]) -> list[T]:
        """Train each layer group of `method` with `train` (its own checkpoint folder, a progress bar), in order."""
        parts = []
        for group in self.cell_layers(method, request.layers):
            config = self.config(method, request, group)
            folder = request.folder / self.name / method_file_stem(method.name) / ("layer" + "-".join(map(str, group)))
            with tqdm(total=config.steps, desc=f"learn {method.name} L{','.join(map(str, group))}", unit="step",
                      leave=False) as bar:
                def shown(step: int, entry: dict[str, float], bar: tqdm = bar) -> None:
                    bar.update(step - bar.n)
                    bar.set_postfix({k: f"{v:.3f}" for k, v in entry.items() if k in ("loss", "val_loss")})

                parts.append(train(config, folder, shown))
        return parts

    def build(self, method: Method, request: BuildRequest) -> Steerable:
        parts = self.train_groups(method, request, lambda config, folder, shown: self.train(
            method, request, config, folder, shown))
        if len(parts) == 1 and len(parts[0].layers) > 1:  # one vector trained jointly over several layers
            only = parts[0]
            return dataclasses.replace(only, method=method.name, meta={**only.meta, "family": self.name})
        return combine_layers(parts, method.name, {"family": self.name, "split": request.split.to_dict(),
                                                   "seed": request.seed,
                                                   "train_pairs_hash": parts[0].meta["train_pairs_hash"]})

    def config(self, method: Method, request: BuildRequest, layers: Sequence[int]) -> LearnConfig:
        """The LearnConfig of one layer group."""
        return learn_config(method, request.learn, layers, request.seed, request.n_pairs)

    def train(self, method: Method, request: BuildRequest, config: LearnConfig, folder: Path,
              progress: Callable[[int, dict[str, float]], None]) -> SteeringVector:
        """Train one layer group (a family that trains differently, e.g. through a gate, overrides this)."""
        return learn_vector(request.model, request.split, config, folder, progress=progress)

    def same_build(self, old: Steerable, method: Method, request: BuildRequest, pairs_hash: str) -> bool:
        if not super().same_build(old, method, request, pairs_hash):
            return False
        ignore = {"layers", "seed", "n_pairs"}  # layers checked above; seed and pairs by the pairs hash
        for group in self.cell_layers(method, request.layers):
            trained = (old.meta.get("learned", {}) if len(group) > 1 else
                       old.meta.get("layers", {}).get(str(group[0]), {}).get("learned", {}))
            want = self.config(method, request, group).to_dict()
            if {k: (list(v) if isinstance(v, tuple) else v) for k, v in want.items() if k not in ignore} != \
                    {k: v for k, v in trained.items() if k not in ignore}:
                return False
        return True


FAMILY = Learned()
