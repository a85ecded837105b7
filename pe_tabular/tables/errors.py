"""The tables wing's error for schema problems (shared by the schema model and the schema-file checks)."""

from __future__ import annotations


class SchemaError(ValueError):
    """A schema that cannot be used; the message names the column and field at fault."""
