"""The model hashes a workflow file records, by the name it gives each model, so a reader's differently named
copy can be found by content: canvas files' `properties.models` (per node) and top-level `models` entries, and
the A1111-style `parameters` text other tools write into images ("Model hash: ...", "Lora hashes: ...")."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

_HEX = re.compile(r"^[0-9a-fA-F]{8,64}$")
_MODEL_HASH = re.compile(r"Model hash:\s*([0-9a-fA-F]{8,64})")
_MODEL_NAME = re.compile(r"Model:\s*([^,\n]+)")
_LIST_HASHES = re.compile(r'(?:Lora|TI) hashes:\s*"([^"]*)"')
_CIVITAI_HASHES = re.compile(r"Hashes:\s*(\{[^\n]*\})")


def _entries(canvas: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from canvas.get("models") or ()
    graphs = [canvas, *((canvas.get("definitions") or {}).get("subgraphs") or ())]
    for graph in graphs:
        if not isinstance(graph, Mapping):
            continue
        for node in graph.get("nodes") or ():
            props = node.get("properties") if isinstance(node, Mapping) else None
            if isinstance(props, Mapping):
                yield from props.get("models") or ()


def hashes_from_canvas(canvas: Mapping[str, Any]) -> dict[str, str]:
    """name -> sha256 (or AutoV2) for every model entry of a canvas file that carries a hash."""
    found: dict[str, str] = {}
    for entry in _entries(canvas):
        if not isinstance(entry, Mapping):
            continue
        name, digest = entry.get("name"), entry.get("hash")
        kind = str(entry.get("hash_type", "sha256")).lower()
        if isinstance(name, str) and isinstance(digest, str) and _HEX.match(digest) and kind in ("sha256", "autov2"):
            found.setdefault(name, digest.lower())
    return found


def hashes_from_parameters(text: str) -> dict[str, str]:
    """name -> hash from A1111-style generation parameters (names as written there, often without extension)."""
    found: dict[str, str] = {}
    model_hash, model_name = _MODEL_HASH.search(text), _MODEL_NAME.search(text)
    if model_hash and model_name:
        found[model_name.group(1).strip()] = model_hash.group(1).lower()
    for listed in _LIST_HASHES.findall(text):
        for pair in listed.split(","):
            name, _, digest = pair.rpartition(":")
            if name.strip() and _HEX.match(digest.strip()):
                found.setdefault(name.strip(), digest.strip().lower())
    civitai = _CIVITAI_HASHES.search(text)
    if civitai:
        try:
            table = json.loads(civitai.group(1))
        except json.JSONDecodeError:
            table = {}
        for key, digest in table.items() if isinstance(table, dict) else ():
            name = model_name.group(1).strip() if key == "model" and model_name else key.partition(":")[2] or key
            if isinstance(digest, str) and _HEX.match(digest):
                found.setdefault(name, digest.lower())
    return found
