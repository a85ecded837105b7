"""pe-tabular: differentially private synthetic data without training, by Private Evolution."""

from .schema import Column, Schema
from .synthesizer import PESynthesizer

__version__ = "0.1.0"
__all__ = ["Column", "PESynthesizer", "Schema", "__version__"]
