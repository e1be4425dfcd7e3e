"""The file family: a vector another tool (or another run) wrote, measured in the same cells as ours.

`file:PATH[#L]` reads a workbench safetensors (plain or exported), a GGUF control vector (ours or repeng's),
or plain `.npy` / safetensors tensors (`steering.artifacts.foreign_vectors`); never a pickle. `#L` picks one layer (and
gives a single `[d_model]` array its layer). Its cells steer the layers the file holds (each alone, like any
vector) that the sweep asks for. Nothing is trained: its training pairs are unknown to the sweep, which says so
unless the file records this sweep's split.

Example:
    >>> FAMILY.parse("file:vectors/repeng.gguf#12").options
    {'path': 'vectors/repeng.gguf', 'layer': 12}
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from interp.errors import InputError
from steering.artifacts.foreign_vectors import is_foreign, read_foreign_vector
from steering.artifacts.steering_vector import SteeringVector
from steering.artifacts.vector_file import check_vector_fits, read_vector
from steering.methods.family import BuildRequest, Family, Method

if TYPE_CHECKING:
    from steering.artifacts.steerable import Steerable


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (a saved copy is reused only while the file is unchanged)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class VectorFile(Family):
    """Vectors read from files: `file:PATH[#layer]`."""

    name = "file"
    scale = ("the file's own scale: strength 1 adds the vector as written (a GGUF control vector has its strength "
             "folded in; a workbench learned vector is trained at -1); the grid is the sweep's --strengths unless "
             "--family-strengths file=... says otherwise")

    def parse(self, spec: str) -> Method | None:
        spec = spec.strip()
        if not spec.startswith("file:"):
            return None
        path, hash_sign, layer = spec[len("file:"):].rpartition("#") if "#" in spec else (spec[5:], "", "")
        if not path:
            raise InputError("no path after 'file:'", path="--method", expected="file:PATH[#layer]")
        try:
            chosen = int(layer) if hash_sign else None
        except ValueError:
            raise InputError(f"{spec!r}: #{layer} is not a layer number", path="--method",
                             expected="file:PATH#12") from None
        return Method(spec, self.name, f"vector read from {path}", {"path": path, "layer": chosen})

    def read(self, method: Method) -> SteeringVector:
        """The vector the file holds (one layer with `#L`)."""
        path, layer = Path(method.options["path"]), method.options["layer"]
        if layer is not None and path.is_file() and is_foreign(path):
            return read_foreign_vector(path, layer)  # a single [d_model] array takes its layer from #L
        vector = read_vector(path)
        if layer is None:
            return vector
        if layer not in vector.directions:
            raise InputError(f"the vector has no layer {layer} (it has {vector.layers})", path=path)
        return vector.select([layer])

    def cell_layers(self, method: Method, layers: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        layer = method.options["layer"]
        return ((layer,),) if layer is not None else super().cell_layers(method, layers)

    def build(self, method: Method, request: BuildRequest) -> SteeringVector:
        path = Path(method.options["path"])
        vector = self.read(method)
        check_vector_fits(vector, path, request.model, request.force)
        wanted = [layer for group in self.cell_layers(method, request.layers) for layer in group]
        missing = [layer for layer in wanted if layer not in vector.directions]
        if missing:
            raise InputError(f"the vector has no layer {missing[0]} (it has {vector.layers}); pick the sweep's "
                             "--layers among them or name one with file:PATH#L", path=path)
        return dataclasses.replace(vector.select(sorted(set(wanted))), method=method.name, meta={
            **vector.meta, "family": self.name, "file": str(path), "file_sha256": file_digest(path)})

    def same_build(self, old: Steerable, method: Method, request: BuildRequest, pairs_hash: str) -> bool:
        path = Path(method.options["path"])
        return (old.method == method.name and path.is_file() and old.meta.get("file_sha256") == file_digest(path)
                and {layer for g in self.cell_layers(method, request.layers) for layer in g} <= set(old.layers))


FAMILY = VectorFile()
