"""interp: everything about the model itself; knows nothing of probes or steering.

| sub-package | holds                                                                                  |
| ----------- | -------------------------------------------------------------------------------------- |
| `tasks/`    | `Example` records: task generators, the fact bank, external loaders                      |
| `models/`   | `load_model` -> `ChatModel`, chat templates, architectures, hooks on sites, memory checks |
| `capture/`  | activations into an `ActivationStore`: backends (hooks, nnsight, TL, remote), positions, Ray |
| `store/`    | `ActivationStore` and the file helpers every artifact goes through (atomic, tagged files, runs, compat) |
| `scoring/`  | log-probability scoring of answer choices (one scorer, frozen-prefix; a plain reference for tests), profiles |
| `analysis/` | logit lens, patching, head attribution                                                  |
| `sites`     | the one layer-addressing scheme (TransformerLens hook names), pure Python                 |
| `stats`     | confidence intervals grouped by `pair_id`                                                |
| `errors`    | `InputError`: bad outside data named by file, line or record, field and what was expected  |
| `outputs`, `context` | outputs checked before any model work; cutting a chat to the context only when asked |
| `lazy_names`| the `__getattr__` that lets a package list names it loads on first use                    |
| `records`   | `Record`: the dict round trip of a frozen settings dataclass (`to_dict`, lenient `from_dict`) |

Each sub-package's `__init__` lists its public names. This module imports nothing, so
`import interp.sites` stays cheap (no torch).

Example:
    >>> from interp.sites import parse_site
    >>> parse_site("blocks.3.hook_resid_post", n_layers=12).layer
    3
"""
