"""Nearest-neighbour vote histograms: reference kernel, fast kernels, noisy release, selection."""

from pe_tabular.voting.histogram import Selection, clip_counts, select, vote_histogram
from pe_tabular.voting.reference import nearest

__all__ = ["Selection", "clip_counts", "nearest", "select", "vote_histogram"]
