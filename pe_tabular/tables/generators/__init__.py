"""Table generators: the built-in statistical and tree backends, LLM row writers, SDV on public data."""
