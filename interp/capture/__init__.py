"""Activation capture into an ActivationStore: backends (hooks, nnsight, TL, remote), positions, Ray."""
