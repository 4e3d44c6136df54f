"""The composition root: the one place that builds a Loom runtime (folders, node environment, registry with the
built-in nodes and the node packs, output cache, executor, job queue) from typed settings.

cli/ turns flags into `RuntimeSettings` and calls it; scaleout/ workers call it with the settings the server shipped
them; server/ is handed what it built. Nothing below it (engine, formats, nodes, diffusion, compat) imports it.
"""
