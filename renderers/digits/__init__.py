"""The DIGITS wing: procedural stroke and font renderers as PE backends, the image encoder, evaluation, report, CLI."""
