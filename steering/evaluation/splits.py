"""Train/test splits grouped by `pair_id`: vectors learn on one side, sweeps measure on the other.

A pair goes to the test side when a hash of `(seed, pair_id)` falls below
`test_fraction`. The side of a question therefore depends only on its id and
the seed: not on which task, subset or order it came in. That matters because
fact-bank tasks share pair ids (the `caa` item, the `answer` question and the
`are_you_sure` dialogue about one fact all carry the fact's id), so a vector
built from `caa` training pairs never saw any variant of a test question.

Example:
    >>> split = PairSplit(seed=0, test_fraction=0.5)
    >>> split.side("capitals-001") in ("train", "test")
    True
    >>> split.side("capitals-001") == PairSplit(0, 0.5).side("capitals-001")
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from interp.tasks.example import Example
from probes.splits import GroupLeakError

_SCALE = float(16**12)


@dataclass(frozen=True)
class PairSplit:
    """A deterministic split of pair ids into train and test.

    Args:
        seed: salts the hash; another seed gives an independent split.
        test_fraction: expected share of pairs on the test side, in (0, 1).

    Example:
        >>> s = PairSplit(seed=3, test_fraction=0.3)
        >>> train, test = s.partition([f"q{i}" for i in range(1000)])
        >>> 250 < len(test) < 350 and not set(train) & set(test)
        True
    """

    seed: int = 0
    test_fraction: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")

    def position(self, pair_id: str) -> float:
        """The pair's hash as a number in [0, 1)."""
        digest = hashlib.sha256(f"{self.seed}:{pair_id}".encode()).hexdigest()
        return int(digest[:12], 16) / _SCALE

    def side(self, pair_id: str) -> str:
        """ "test" or "train"."""
        return "test" if self.position(pair_id) < self.test_fraction else "train"

    def is_test(self, pair_id: str) -> bool:
        return self.side(pair_id) == "test"

    def partition(self, pair_ids: Iterable[str]) -> tuple[list[str], list[str]]:
        """(train ids, test ids), each in input order without repeats."""
        unique = list(dict.fromkeys(pair_ids))
        return [p for p in unique if not self.is_test(p)], [p for p in unique if self.is_test(p)]

    def examples(self, examples: Sequence[Example], side: str) -> list[Example]:
        """The examples whose pair is on `side` ("train" or "test")."""
        if side not in ("train", "test"):
            raise ValueError(f"side must be 'train' or 'test', got {side!r}")
        return [ex for ex in examples if self.side(ex.pair_id) == side]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PairSplit:
        return cls(seed=int(d["seed"]), test_fraction=float(d["test_fraction"]))


def pairs_hash(pair_ids: Iterable[str]) -> str:
    """sha256 of the sorted, de-duplicated pair ids (what a vector's meta records).

    Example:
        >>> pairs_hash(["b", "a", "a"]) == pairs_hash(["a", "b"])
        True
    """
    digest = hashlib.sha256()
    for pair in sorted(set(pair_ids)):
        digest.update(pair.encode() + b"\n")
    return digest.hexdigest()


def check_disjoint(train: Iterable[str], test: Iterable[str], what: str = "split") -> None:
    """Raise GroupLeakError (`probes.splits`, the one leak error) if any pair id is on both sides.

    Args:
        train: pair ids used for training (a vector, a probe).
        test: pair ids the evaluation uses.
        what: named in the message.

    Example:
        >>> check_disjoint(["a"], ["b"])
        >>> check_disjoint(["a"], ["a"])  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ...
        probes.splits.GroupLeakError: split: 1 pair id(s) on both sides, e.g. 'a'
    """
    leaked = sorted(set(train) & set(test))
    if leaked:
        raise GroupLeakError(f"{what}: {len(leaked)} pair id(s) on both sides, e.g. {leaked[0]!r}")
