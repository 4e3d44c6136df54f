"""Opening workflow files whatever their format (API JSON, canvas JSON, images carrying either) and preparing them
to run: model-file substitution, `--set` overrides, and the up-front check for unknown nodes and missing models."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ErrorType
from engine.folders import MODEL_EXTENSIONS, Folders
from engine.registry import NodeRegistry
from engine.types import COMBO
from engine.workflow import Workflow, parse_api
from formats.canvas import Conversion, convert_canvas, is_canvas
from formats.canvas_export import api_to_canvas, update_canvas_widgets
from formats.model_hashes import hashes_from_canvas, hashes_from_parameters
from formats.pngmeta import ImageMetaError, read_embedded_workflow
from formats.problems import Problem, WorkflowFileError, unknown_node_type

IMAGE_SUFFIXES = frozenset({".png", ".webp", ".jpg", ".jpeg"})


@dataclass(frozen=True, slots=True)
class WorkflowDocument:
    """A file's workflow as found: `api` when it holds the API format, `canvas` when it holds the canvas format
    (an image may hold both; the API format is then what runs, the canvas what gets embedded again)."""

    api: dict[str, Any] | None
    canvas: dict[str, Any] | None
    format: str  # "api" | "canvas" | "image"
    parameters: str | None = None

    def model_hashes(self) -> dict[str, str]:
        """Model name -> the hash the file recorded for it (canvas `properties.models`, image parameters)."""
        found = hashes_from_parameters(self.parameters) if self.parameters else {}
        return {**found, **(hashes_from_canvas(self.canvas) if self.canvas else {})}


def classify(data: Any, where: str) -> WorkflowDocument:
    if is_canvas(data):
        return WorkflowDocument(None, dict(data), "canvas")
    if isinstance(data, Mapping) and data and all(isinstance(v, Mapping) and "class_type" in v for v in data.values()):
        return WorkflowDocument(dict(data), None, "api")
    if isinstance(data, Mapping) and isinstance(data.get("prompt"), Mapping):
        return classify(data["prompt"], where)
    raise WorkflowFileError(
        [Problem(ErrorType.INVALID_PROMPT, f"{where}: neither an API-format nor a canvas-format workflow")]
    )


def read_document(path: Path) -> WorkflowDocument:
    """Read a workflow file: JSON in either format, or a PNG/WebP/JPEG that carries one."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WorkflowFileError(
            [Problem(ErrorType.INVALID_PROMPT, f"{path}: cannot read: {exc.strerror or exc}")]
        ) from exc
    if path.suffix.lower() in IMAGE_SUFFIXES or raw[:4] in (b"\x89PNG", b"RIFF") or raw[:2] == b"\xff\xd8":
        try:
            embedded = read_embedded_workflow(raw)
        except ImageMetaError as exc:
            raise WorkflowFileError([Problem(ErrorType.INVALID_PROMPT, f"{path}: {exc}")]) from exc
        if embedded.prompt is None and embedded.workflow is None:
            raise WorkflowFileError([Problem(ErrorType.INVALID_PROMPT, f"{path}: the image carries no workflow")])
        return WorkflowDocument(embedded.prompt, embedded.workflow, "image", embedded.parameters)
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkflowFileError([Problem(ErrorType.INVALID_PROMPT, f"{path}: not valid JSON: {exc}")]) from exc
    return classify(data, str(path))


def document_api(doc: WorkflowDocument, registry: NodeRegistry) -> Conversion:
    """The API format of a document (converting its canvas when that is all it has), with the conversion's problems
    and notes."""
    if doc.api is not None:
        return Conversion(doc.api, [])
    assert doc.canvas is not None
    return convert_canvas(doc.canvas, registry)


def parse_model_map(entries: Iterable[str]) -> dict[str, str]:
    """`NAME=FILE` pairs from the command line; raises WorkflowFileError naming every malformed one."""
    mapping: dict[str, str] = {}
    problems = []
    for entry in entries:
        name, sep, file = entry.partition("=")
        if not sep or not name.strip() or not file.strip():
            problems.append(Problem(ErrorType.BAD_OVERRIDE, f"--model-map {entry!r}: expected NAME=FILE"))
            continue
        mapping[name.strip()] = file.strip()
    if problems:
        raise WorkflowFileError(problems)
    return mapping


def apply_model_map(api: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the workflow where every literal input equal to a mapped model name names its substitute."""
    out: dict[str, Any] = {}
    for node_id, entry in api.items():
        inputs = {k: mapping.get(v, v) if isinstance(v, str) else v for k, v in (entry.get("inputs") or {}).items()}
        out[node_id] = {**entry, "inputs": inputs}
    return out


def _override_value(text: str) -> Any:
    """JSON when it parses (7, 0.5, true, "text"), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def find_nodes(api: Mapping[str, Any], ref: str) -> list[str]:
    """Node ids a `--set` reference names: the id itself, else nodes with that title, else with that class type."""
    if ref in api:
        return [ref]
    titled = [k for k, v in api.items() if ((v.get("_meta") or {}).get("title")) == ref]
    return titled or [k for k, v in api.items() if v.get("class_type") == ref]


def apply_overrides(api: Mapping[str, Any], overrides: Sequence[str], registry: NodeRegistry) -> dict[str, Any]:
    """Apply `NODE.INPUT=VALUE` overrides (NODE: an id, a title or a class type that names exactly one node)."""
    out = {k: {**v, "inputs": dict(v.get("inputs") or {})} for k, v in api.items()}
    problems: list[Problem] = []
    for text in overrides:
        target, sep, value = text.partition("=")
        ref, dot, name = target.rpartition(".")
        if not sep or not dot or not ref or not name:
            problems.append(Problem(ErrorType.BAD_OVERRIDE, f"--set {text!r}: expected NODE.INPUT=VALUE"))
            continue
        matches = find_nodes(out, ref)
        if not matches:
            problems.append(Problem(ErrorType.BAD_OVERRIDE, f"--set {text!r}: no node has id, title or type {ref!r}"))
            continue
        if len(matches) > 1:
            problems.append(
                Problem(
                    ErrorType.BAD_OVERRIDE,
                    f"--set {text!r}: {ref!r} names several nodes ({', '.join(matches)}); use an id",
                )
            )
            continue
        node_id = matches[0]
        spec = registry.get(out[node_id]["class_type"])
        if spec is not None and spec.input(name) is None:
            known = ", ".join(i.name for i in spec.inputs if i.kind != "hidden")
            problems.append(
                Problem(
                    ErrorType.BAD_OVERRIDE,
                    f"--set {text!r}: node {node_id} ({spec.class_type}) has no input {name!r}; it has {known}",
                    node_id=node_id,
                    class_type=spec.class_type,
                    input_name=name,
                )
            )
            continue
        out[node_id]["inputs"][name] = _override_value(value)
    if problems:
        raise WorkflowFileError(problems)
    return out


# Words in an input's (or else its node type's) name -> the model folder its files come from.
_FOLDER_WORDS = (
    ("ckpt", "checkpoints"),
    ("checkpoint", "checkpoints"),
    ("lora", "loras"),
    ("vae", "vae"),
    ("control", "controlnet"),
    ("upscale", "upscale_models"),
    ("clip", "clip"),
    ("unet", "diffusion_models"),
)


def model_folder(class_type: str, input_name: str) -> str:
    """The model folder a model-file input reads from, told by its name (`lora_name`) or its node's type
    (`UpscaleModelLoader.model_name`); "models" when neither tells."""
    for text in (input_name.lower(), class_type.lower()):
        for word, folder in _FOLDER_WORDS:
            if word in text:
                return folder
    return "models"


@dataclass(frozen=True, slots=True)
class MissingModel:
    node_id: str
    class_type: str
    input_name: str
    value: str
    folder: str


def find_missing_models(api: Mapping[str, Any], registry: NodeRegistry) -> list[MissingModel]:
    """Model-file inputs (combos whose value has a model file's extension) naming a file their folder lacks."""
    missing: list[MissingModel] = []
    inputs_of: dict[str, Any] = {}
    for node_id, entry in api.items():
        class_type = entry.get("class_type")
        spec = registry.get(class_type) if isinstance(class_type, str) else None
        if spec is None:
            continue
        if class_type not in inputs_of:
            inputs_of[class_type] = spec.current_inputs()
        for inp in inputs_of[class_type]:
            value = (entry.get("inputs") or {}).get(inp.name)
            if (
                inp.type == COMBO
                and isinstance(value, str)
                and Path(value).suffix.lower() in MODEL_EXTENSIONS
                and value not in (inp.choices or ())
            ):
                folder = model_folder(class_type, inp.name)
                missing.append(MissingModel(str(node_id), class_type, inp.name, value, folder))
    return missing


def apply_model_fallbacks(
    api: Mapping[str, Any], registry: NodeRegistry, fallbacks: Mapping[str, str]
) -> dict[str, Any]:
    """A copy of the workflow where each missing model file names `fallbacks[its folder]` instead (when given)."""
    out = {k: {**v, "inputs": dict(v.get("inputs") or {})} for k, v in api.items()}
    for miss in find_missing_models(api, registry):
        if miss.folder in fallbacks:
            out[miss.node_id]["inputs"][miss.input_name] = fallbacks[miss.folder]
    return out


def find_problems(api: Mapping[str, Any], registry: NodeRegistry, folders: Folders | None = None) -> list[Problem]:
    """Unknown node types and model files that are not in the model folders, every one of them, by name."""
    problems = [
        unknown_node_type(str(node_id), entry.get("class_type"))
        for node_id, entry in api.items()
        if not isinstance(entry.get("class_type"), str) or entry["class_type"] not in registry
    ]
    for miss in find_missing_models(api, registry):
        where = ""
        if folders is not None and folders.model_dirs(miss.folder):
            where = " (looked in " + ", ".join(str(p) for p in folders.model_dirs(miss.folder)) + ")"
        problems.append(
            Problem(
                ErrorType.VALUE_NOT_IN_LIST,
                f"node {miss.node_id} ({miss.class_type}): model file {miss.value!r} for input {miss.input_name!r} "
                f"is not in {miss.folder}/{where}",
                node_id=miss.node_id,
                class_type=miss.class_type,
                input_name=miss.input_name,
                value=miss.value,
                model_file=True,
            )
        )
    return problems


ModelResolver = Callable[[dict[str, Any], Mapping[str, str]], tuple[dict[str, Any], list[str], list[Problem]]]
"""Given a workflow and the model hashes its file recorded: the workflow with model names resolved to files that are
here, one line per name resolved, and a problem per name that could be several files (`catalog.names`)."""


@dataclass(frozen=True, slots=True)
class LoadedWorkflow:
    """A workflow ready to validate and run: its API format, the canvas to embed in saved images (if any), a line
    per model name that was resolved to a file of another name, and a line per output node the conversion left out
    (cut off by a muted node)."""

    api: dict[str, Any]
    canvas: dict[str, Any] | None
    format: str
    notes: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()

    def canvas_to_embed(self, registry: NodeRegistry) -> dict[str, Any] | None:
        """The canvas a saved image should carry: the file's own with this run's values, else one laid out from
        the API format (None when even that cannot be made)."""
        if self.canvas is not None:
            return update_canvas_widgets(self.canvas, self.api, registry)
        try:
            return api_to_canvas(self.api, registry)
        except WorkflowFileError:
            return None


def load_workflow(
    path: Path,
    registry: NodeRegistry,
    folders: Folders | None = None,
    *,
    model_map: Mapping[str, str] | None = None,
    model_fallbacks: Mapping[str, str] | None = None,
    resolve_models: ModelResolver | None = None,
    overrides: Sequence[str] = (),
    check: bool = True,
) -> LoadedWorkflow:
    """Read, convert, substitute models (`model_map` by name, then `resolve_models` by the resolution rules, then
    `model_fallbacks` by folder for files still missing), apply overrides, then check: raises WorkflowFileError with
    every problem."""
    doc = read_document(path)
    conversion = document_api(doc, registry)
    api, problems = conversion.api, conversion.problems
    notes: list[str] = []
    if model_map:
        api = apply_model_map(api, model_map)
    if resolve_models is not None:
        api, notes, ambiguous = resolve_models(api, doc.model_hashes())
        problems += ambiguous
    if model_fallbacks:
        api = apply_model_fallbacks(api, registry, model_fallbacks)
    if check:
        reported = {(p.node_id, p.input_name) for p in problems}
        problems += [p for p in find_problems(api, registry, folders) if (p.node_id, p.input_name) not in reported]
    if problems:
        raise WorkflowFileError(problems)
    if overrides:
        api = apply_overrides(api, overrides, registry)
    return LoadedWorkflow(api, doc.canvas, doc.format, tuple(notes), tuple(conversion.notes))


def load_workflow_file(
    path: Path,
    registry: NodeRegistry,
    folders: Folders | None = None,
    *,
    model_map: Mapping[str, str] | None = None,
    overrides: Sequence[str] = (),
) -> Workflow:
    """A workflow file of any format as a Workflow, ready to validate; raises WorkflowFileError (a WorkflowError)."""
    return parse_api(load_workflow(path, registry, folders, model_map=model_map, overrides=overrides).api)
