"""The families of vector methods, one module each (`steering.methods.registry.FAMILIES` lists them).

| module        | family       | methods                                                                  |
| ------------- | ------------ | ------------------------------------------------------------------------ |
| `statistics`  | statistics   | `caa`, `user_minus_third_party`, `opinion_minus_neutral`, `<probe>[:<source>]` |
| `learned`     | learned      | `learned[:target][@positions][#layers][/task+task]`                      |
| `gated`       | gated        | `gated[...]`: a learned vector trained and measured behind the probe gate |
| `selfgated`   | selfgated    | `selfgated[...]`: a learned vector behind a gate learned with it          |
| `lowrank`     | lowrank      | `lowrank[...][%rank]`: a learned low-rank edit (no vector)                |
| `heads`       | heads        | `heads[@k]`                                                              |
| `vector_file` | file         | `file:PATH`: a vector another tool (or run) wrote                        |
"""
