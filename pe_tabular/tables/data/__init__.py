"""Built-in demo data (see ATTRIBUTION.md)."""
