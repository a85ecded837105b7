"""The TABLES wing: schema (public or DP-inferred), binning and DP marginals, the mixed-row encoder,
generators (statistical, tree, LLM, SDV), the ``PESynthesizer`` facade, evaluation, report and CLI."""

from pe_tabular.tables.schema import Column, Schema
from pe_tabular.tables.synthesizer import PESynthesizer

__all__ = ["Column", "PESynthesizer", "Schema"]
