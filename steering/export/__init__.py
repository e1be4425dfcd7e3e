"""Export steering vectors for deployment, and verify each export in its target runtime.

Three formats (registry `FORMATS` in `steering.export.formats`):

- `safetensors`: the workbench's own file plus an export record (`native`).
- `gguf`: a llama.cpp / repeng control vector (`gguf_cvec`).
- `hf-folded`: an HF model folder with the steering folded into the weights (`folded`).

`verify_export` loads an export the way its runtime does and compares its
next-token distributions with the hook-steered model (`reference`, `compare`,
`verify`; llama.cpp itself through `llamacpp` where installed).

Example:
    >>> from steering.export import export_vector, verify_export  # doctest: +SKIP
    >>> export_vector("gguf", vector.select(range(5, 21)), "v.gguf", strength=4.0)  # doctest: +SKIP
    >>> verify_export("v.gguf", model, source=vector).passed  # doctest: +SKIP
    True
"""

from steering.export.folded import fold_checkpoint
from steering.export.formats import FORMATS, detect_format, export_vector, verify_export
from steering.export.gguf_cvec import check_gguf_control_vector, export_gguf, read_gguf_control_vector
from steering.export.info import ExportError, ExportInfo
from steering.export.native import export_native, load_native
from steering.export.verify import VerifyReport

__all__ = [
    "FORMATS",
    "ExportError",
    "ExportInfo",
    "VerifyReport",
    "check_gguf_control_vector",
    "detect_format",
    "export_gguf",
    "export_native",
    "export_vector",
    "fold_checkpoint",
    "load_native",
    "read_gguf_control_vector",
    "verify_export",
]
