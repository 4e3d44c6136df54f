"""Loom's HTTP + WebSocket server (aiohttp): the wire protocol of DESIGN.md section 6."""
