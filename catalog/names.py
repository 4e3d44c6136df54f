"""Model names across a whole workflow: every model-file input whose file is not here is looked up by the rules
in `catalog.resolve`, before validation sees the workflow, so the validated and stored workflow names real files."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from catalog.index import ModelIndex
from catalog.resolve import AmbiguousModelName, Resolved, resolve_model_name
from engine.admit import NameCheck, NameResolver, ResolvedName
from engine.errors import ErrorType
from engine.folders import MODEL_EXTENSIONS
from engine.registry import NodeRegistry
from engine.types import COMBO
from formats.model_hashes import hashes_from_canvas
from formats.problems import Problem
from formats.workflow_files import ModelResolver, model_folder


@dataclass(frozen=True, slots=True)
class ModelRename:
    """One input of one node whose model name was resolved to a file that is here."""

    node_id: str
    class_type: str
    input_name: str
    resolved: Resolved

    def message(self) -> str:
        r = self.resolved
        return f"{r.original} -> {r.name} (found by {r.rule})"


@dataclass(frozen=True, slots=True)
class AmbiguousInput:
    """One input whose model name could be any of several different files."""

    node_id: str
    class_type: str
    input_name: str
    error: AmbiguousModelName


@dataclass
class ResolvedModels:
    """The workflow with resolved names, what was renamed, and what could not be decided."""

    api: dict[str, Any]
    renames: list[ModelRename] = field(default_factory=list)
    ambiguous: list[AmbiguousInput] = field(default_factory=list)


def _is_model_combo(choices: Sequence[Any]) -> bool:
    return any(isinstance(c, str) and PurePosixPath(c).suffix.lower() in MODEL_EXTENSIONS for c in choices)


def hash_lookup(index: ModelIndex, folder: str, hash_now: bool) -> Callable[[str], list[str]]:
    """Names of the folder's files with a given hash. `hash_now` hashes the folder's unhashed files first (the CLI
    does; the server leaves that to its background hasher and so only finds files hashed already)."""

    def lookup(digest: str) -> list[str]:
        known = folder if folder in index.folders.models else None
        if hash_now:
            index.hash_pending([f for f in index.pending() if known is None or f.folder == known])
        return [f.name for f in index.by_hash(digest, known)]

    return lookup


def resolve_models(
    api: Mapping[str, Any],
    registry: NodeRegistry,
    *,
    hashes: Mapping[str, str] | None = None,
    index: ModelIndex | None = None,
    hash_now: bool = False,
) -> ResolvedModels:
    """Resolve every model-file combo value that is not among its choices; values already valid stay as they are."""
    out = {node_id: dict(entry) if isinstance(entry, Mapping) else entry for node_id, entry in api.items()}
    result = ResolvedModels(out)
    current: dict[str, Any] = {}
    for node_id, entry in api.items():
        class_type = entry.get("class_type") if isinstance(entry, Mapping) else None
        if not isinstance(class_type, str):
            continue  # validation reports it
        spec = registry.get(class_type)
        inputs = entry.get("inputs") if spec is not None else None
        if spec is None or not isinstance(inputs, Mapping):
            continue
        if class_type not in current:
            current[class_type] = spec.current_inputs()
        for inp in current[class_type]:
            value = inputs.get(inp.name)
            choices = inp.choices or ()
            if inp.type != COMBO or not isinstance(value, str) or value in choices or not _is_model_combo(choices):
                continue
            by_hash = hash_lookup(index, model_folder(class_type, inp.name), hash_now) if index else None
            try:
                found = resolve_model_name(value, [str(c) for c in choices], hashes=hashes, by_hash=by_hash)
            except AmbiguousModelName as exc:
                result.ambiguous.append(AmbiguousInput(str(node_id), class_type, inp.name, exc))
                continue
            if found is not None:
                out[node_id]["inputs"] = {**out[node_id].get("inputs", {}), inp.name: found.name}
                result.renames.append(ModelRename(str(node_id), class_type, inp.name, found))
    return result


def describe(node_id: str, class_type: str, input_name: str) -> str:
    return f"node {node_id} ({class_type}) {input_name}"


def file_resolver(registry: NodeRegistry, index: ModelIndex | None) -> ModelResolver:
    """The resolver `formats.workflow_files.load_workflow` takes, for the CLI: it hashes unhashed files when a
    workflow gives a hash, since a one-off run has no background hasher to wait for."""

    def resolve(api: dict[str, Any], hashes: Mapping[str, str]) -> tuple[dict[str, Any], list[str], list[Problem]]:
        result = resolve_models(api, registry, hashes=hashes, index=index, hash_now=True)
        notes = [f"{describe(r.node_id, r.class_type, r.input_name)}: {r.message()}" for r in result.renames]
        problems = [
            Problem(
                ErrorType.VALUE_NOT_IN_LIST,
                f"{describe(a.node_id, a.class_type, a.input_name)}: {a.error}",
                node_id=a.node_id,
                class_type=a.class_type,
                input_name=a.input_name,
                value=a.error.original,
                model_file=True,
            )
            for a in result.ambiguous
        ]
        return result.api, notes, problems

    return resolve


def prompt_resolver(registry: NodeRegistry, index: ModelIndex | None) -> NameResolver:
    """The resolver the job queue applies when it accepts an API prompt: hashes come from the canvas the front end
    sent along (`extra_data.extra_pnginfo.workflow`); only files the background hasher reached are found by hash."""

    def resolve(prompt: Mapping[str, Any], extra_data: Mapping[str, Any]) -> NameCheck:
        pnginfo = extra_data.get("extra_pnginfo")
        canvas = pnginfo.get("workflow") if isinstance(pnginfo, Mapping) else None
        hashes = hashes_from_canvas(canvas) if isinstance(canvas, Mapping) else {}
        result = resolve_models(prompt, registry, hashes=hashes, index=index)
        return NameCheck(
            result.api,
            tuple(ResolvedName(r.node_id, r.input_name, r.message()) for r in result.renames),
            {(a.node_id, a.input_name): str(a.error) for a in result.ambiguous},
        )

    return resolve
