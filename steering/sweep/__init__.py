"""Strength x layer x positions x method sweeps: cells, Ray, metrics, fits, report."""
