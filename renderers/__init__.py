"""Procedural renderers used as Private Evolution backends (no neural network, no network access)."""
