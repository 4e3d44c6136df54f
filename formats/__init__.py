"""Workflow file formats: canvas <-> API conversion, image metadata, and the problems a file can have. No torch."""
