"""Files: the ActivationStore and the helpers every artifact is written through.

| module        | holds                                                                          |
| ------------- | ------------------------------------------------------------------------------ |
| `activations` | `ActivationStore`: safetensors shards + `manifest.json` + `examples.jsonl`       |
| `writer`      | the manifest protocol every store writer follows (`open_store`, `add_shard`)    |
| `atomic`      | atomic writes: temp file in the same folder, fsync, rename                      |
| `tagged_file` | safetensors files whose metadata carries a format tag and JSON records          |
| `runs`        | run folders under `artifacts/` and their `run.json` provenance                  |
| `compat`      | `check_artifact_fits`: the one check that an artifact fits a model (width, hash) |

Example:
    >>> from interp.store import ActivationStore
    >>> store = ActivationStore("artifacts/demo/activations")  # doctest: +SKIP
"""

from interp.store.activations import FORMAT_VERSION, ActivationStore, StoreError, read_manifest
from interp.store.atomic import atomic_path, atomic_write_json, atomic_write_text
from interp.store.compat import check_artifact_fits
from interp.store.runs import artifacts_root, record_run, run_dir
from interp.store.tagged_file import read_tagged, write_tagged
from interp.store.writer import add_shard, commit, open_store

__all__ = [
    "add_shard",
    "artifacts_root",
    "atomic_path",
    "atomic_write_json",
    "atomic_write_text",
    "check_artifact_fits",
    "commit",
    "open_store",
    "read_manifest",
    "read_tagged",
    "record_run",
    "run_dir",
    "write_tagged",
    "ActivationStore",
    "FORMAT_VERSION",
    "StoreError",
]
