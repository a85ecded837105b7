"""pe-tabular: differentially private synthetic data without training, by Private Evolution."""

__version__ = "0.1.0"
