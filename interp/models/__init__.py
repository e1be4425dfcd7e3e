"""Models: loading (embedded GGUF, hub id, folder, .gguf), chat templates, architectures, hooks on sites."""
