"""Loom's graph engine: node specs, validation, planning, caching and execution. Imports no torch."""
