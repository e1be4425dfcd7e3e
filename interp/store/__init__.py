"""The ActivationStore and the file helpers every artifact goes through (atomic, tagged files, runs)."""
