"""Scoring answer choices by log-probability (frozen-prefix scorer, plain reference) and profiles."""
