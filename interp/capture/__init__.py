"""Capture activations into an ActivationStore: every backend (remote included), named positions, Ray.

| module        | holds                                                                        |
| ------------- | ---------------------------------------------------------------------------- |
| `collect`     | `capture` (one process, resumable shards), `activations` (in memory)         |
| `backends/`   | hooks (default), nnsight, TransformerLens, and nnsight on NDIF (`remote`)     |
| `positions`   | named token positions (`last_prompt`, `answer`, `user_claim`, `all`)          |
| `distributed` | `capture_on_ray`: Ray workers, equal bit for bit to `capture`                |
| `ray_pool`    | a pool of Ray actors that each hold a model (also used by steering sweeps)    |

Sites are named by `interp.sites` and found on the model by `interp.models.hooks`.

Example:
    >>> from interp.capture import CaptureConfig, capture
    >>> store = capture(model, examples, CaptureConfig(sites=("blocks.*.hook_resid_post",)), folder)  # doctest: +SKIP
"""

from interp.capture.backends import BACKENDS, Backend, Batch, make_backend
from interp.capture.backends.remote import check_remote, load_remote_model
from interp.capture.collect import CaptureConfig, activations, capture, compute_shard, examples_hash
from interp.capture.distributed import DistributedCapture, capture_on_ray
from interp.capture.positions import POSITIONS, Encoded, Position, encode_example, parse_positions
from interp.capture.ray_pool import RayOptions, ray_session, run_on_actors

__all__ = [
    "activations",
    "capture",
    "capture_on_ray",
    "check_remote",
    "compute_shard",
    "encode_example",
    "examples_hash",
    "load_remote_model",
    "make_backend",
    "parse_positions",
    "ray_session",
    "run_on_actors",
    "BACKENDS",
    "Backend",
    "Batch",
    "CaptureConfig",
    "DistributedCapture",
    "Encoded",
    "POSITIONS",
    "Position",
    "RayOptions",
]
