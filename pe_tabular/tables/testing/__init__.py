"""Test and demo support for the tables wing (a loopback OpenAI-compatible server); not used by runs."""
