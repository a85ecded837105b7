"""Parametric simulators used as Private Evolution backends (network traffic)."""
