"""interp: models, chat templates, task data, activation capture and the ActivationStore.

Public names (imported lazily by their modules, no work at import time):

- `interp.models.loading`: `load_model`, `ChatModel`, `ModelLoadError`
- `interp.capture.collect`: `capture`, `CaptureConfig`, `compute_shard` (one shard's tensors, shared by every writer)
- `interp.store.writer`: `open_store` (verifies and repairs a resumed store), `verify_shards`, `add_shard`, `commit`
  (the manifest protocol of every store writer)
- `interp.errors`: `InputError` (bad outside data: file, line or record, field, expected), `parse_json`, `read_text`
- `interp.outputs`: `prepare_dir`, `check_out_file` (outputs checked before any model work)
- `interp.context`: `fit_chat` (cut a chat to the model's context, only when asked)
- `interp.capture.distributed`: `capture_on_ray`, `DistributedCapture` (Ray workers; `pip install '.[ray]'`)
- `interp.capture.ray_pool`: `RayOptions`, `run_on_actors`, `ray_session`
- `interp.models.memory`: `LoadRequest`, `check_memory`, `estimate_memory`, `MemoryCheckError`
- `interp.capture.backends.remote`: `load_remote_model`, `check_remote` (nnsight on NDIF)
- `interp.store.activations`: `ActivationStore`, `StoreError`
- `interp.sites`: `Site`, `parse_site`, `expand_sites`, `hidden_state_index`
- `interp.capture.positions`: `POSITIONS`, `encode_example`
- `interp.tasks`: `Example`, `Turn`, task generators and external loaders
- `interp.stats`: `grouped_bootstrap_ci`, `CI`
"""
