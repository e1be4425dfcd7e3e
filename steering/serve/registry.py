"""The vectors and gates a server offers: native exports and probe gates from one folder, checked at load.

Every `*.safetensors` file in the folder is either a native export
(`workbench export --format safetensors`: the raw vector plus its export
record) or a probe gate (`workbench sweep --gate`). Its name in requests is
the file name without `.safetensors`. A vector or gate made for another model
(weights hash or width) is refused when the server starts, not at the first
request; so is any other file.

Example:
    >>> registry = VectorRegistry.load("artifacts/demo/export", model)  # doctest: +SKIP
    >>> [v["name"] for v in registry.listing()["vectors"]]  # doctest: +SKIP
    ['caa-l14']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp.store.tagged_file import read_tagged
from steering.artifacts.probe_gate import GATE_FORMAT, GATE_LEGACY_FORMATS, ProbeGate
from steering.artifacts.steering_vector import SteeringVector
from steering.export.info import ExportInfo
from steering.export.native import EXPORT_KEY, load_native

if TYPE_CHECKING:
    from interp.models.loading import ChatModel


class RegistryError(ValueError):
    """A vectors folder the server refuses to start with; the message names the file and the reason."""


@dataclass(frozen=True, eq=False)
class ServedVector:
    """A loaded native export: the raw vector and its record (recommended strength, layers, positions, ...)."""

    name: str
    vector: SteeringVector
    info: ExportInfo
    path: Path

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "object": "steering.steering_vector", "file": self.path.name, "record": self.info.to_dict()}


@dataclass(frozen=True, eq=False)
class ServedGate:
    """A loaded probe gate."""

    name: str
    gate: ProbeGate
    path: Path

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "object": "steering.probe_gate", "file": self.path.name, "record": self.gate.header()}


@dataclass(frozen=True, eq=False)
class VectorRegistry:
    """Vectors and gates by name.

    Args:
        vectors: name -> loaded native export.
        gates: name -> loaded probe gate.
    """

    vectors: dict[str, ServedVector]
    gates: dict[str, ServedGate]

    @classmethod
    def empty(cls) -> VectorRegistry:
        return cls({}, {})

    @classmethod
    def load(cls, folder: str | Path, model: ChatModel) -> VectorRegistry:
        """Read every `*.safetensors` in `folder`; refuse any file that is not for `model`.

        Args:
            folder: the folder of native exports and gates.
            model: the served model (its width and weights hash are checked).

        Raises:
            RegistryError: a missing folder, a foreign file, or a vector/gate for another model.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise RegistryError(f"--vectors {folder}: no such folder")
        vectors: dict[str, ServedVector] = {}
        gates: dict[str, ServedGate] = {}
        for path in sorted(folder.glob("*.safetensors")):
            name = path.name.removesuffix(".safetensors")
            try:
                records, _ = read_tagged(path, "vector or gate", load_tensors=False)
                header = records.get("workbench")
                if isinstance(header, dict) and header.get("format") in (GATE_FORMAT, *GATE_LEGACY_FORMATS):
                    gate = ProbeGate.load(path)
                    gate.check_compatible(model.d_model, model.weights_hash)
                    gates[name] = ServedGate(name, gate, path)
                elif isinstance(records.get(EXPORT_KEY), dict):
                    vector, info = load_native(path)
                    vector.check_compatible(model.d_model, model.weights_hash)
                    vectors[name] = ServedVector(name, vector, info, path)
                else:
                    raise ValueError("neither a native export (workbench export --format safetensors) nor a probe "
                                     "gate")
            except ValueError as e:
                raise RegistryError(f"{path}: refused: {e}") from None
        return cls(vectors, gates)

    def listing(self) -> dict[str, Any]:
        """What `GET /v1/steering/vectors` answers: every vector and gate with its record."""
        return {"object": "list", "vectors": [v.describe() for v in self.vectors.values()],
                "gates": [g.describe() for g in self.gates.values()]}
