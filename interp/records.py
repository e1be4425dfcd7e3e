"""`Record`: the dict round trip of a frozen settings dataclass, written once.

A settings dataclass saved into a JSON record (a sweep's `sweep.json`, a learned
vector's meta) and read back later inherits `to_dict` (`dataclasses.asdict`)
and `from_dict`, which takes the keys that are fields and ignores the others:
a record written by an older or newer version still loads, with defaults for
fields it lacks. Settings with nested records or strict reading write their own.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Settings(Record):
    ...     steps: int = 40
    ...     seed: int = 0
    >>> Settings.from_dict({"steps": 10, "gone": "ignored"})
    Settings(steps=10, seed=0)
    >>> Settings(steps=3).to_dict()
    {'steps': 3, 'seed': 0}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any, Self


class Record:
    """Mixin for dataclasses: `to_dict` and a `from_dict` that ignores keys that are not fields."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in names})
