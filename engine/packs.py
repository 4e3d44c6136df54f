"""Node packs: find, import and register the packs in the custom_nodes folders.

A pack is a package folder (with `__init__.py`) or a single `.py` module. Each is imported under its own module
name, `custom_nodes.<pack>` (the name the ecosystem's canvas reads as "this node comes from a pack"), and its
`NODE_CLASS_MAPPINGS`, `NODE_DISPLAY_NAME_MAPPINGS`, `WEB_DIRECTORY` and `@node` objects are read. Whatever a pack
does wrong (a syntax error, a missing dependency, an exception at import, a malformed node declaration) is
recorded in its PackSummary and loading goes on: one broken pack never stops Loom, and one node declaration Loom
cannot read never stops its pack (the class is listed as rejected with the reason; the pack's other nodes load).
A pack with no NODE_CLASS_MAPPINGS may offer `comfy_entrypoint()` (the V3 API), whose extension lists its nodes.
Each import runs under engine.pack_guard: a time limit, stdout kept clean, `os._exit` reported.

Disabling a pack: rename it with a `.disabled` suffix (`my_pack.disabled/`, `my_pack.py.disabled`) or name it in
`disabled` (the `--disable-pack NAME` flag). Packs load in a fixed order, folder by folder and sorted by name
within a folder, so when two define the same node type the first keeps it, the same way on every start.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import inspect
import sys
import time
import traceback
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from engine.native import NativeNode
from engine.pack_guard import PackImportTimeout, guarded
from engine.protocol import spec_from_class
from engine.registry import NodeRegistry
from engine.spec import Invoke, NodeSpec, SpecError

PACK_MODULE_PREFIX = "custom_nodes"
DISABLED_SUFFIX = ".disabled"
SLOW_SECONDS = 3.0
IMPORT_TIMEOUT = 60.0

PackStatus = Literal["ok", "failed", "disabled"]
Adapt = Callable[[NodeSpec], Invoke]
PackKind = Literal["package", "module"]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A node class of a pack that Loom could not read, and why."""

    class_type: str
    reason: str


@dataclass(frozen=True, slots=True)
class PackSummary:
    """How one pack loaded; what the start-up table, `GET /custom_nodes` and `main.py nodes` show.

    `declared` counts the node classes the pack offers; `nodes` are the node types it registered, `ignored` those
    another source had already registered (name clashes: the first keeps the name), `rejected` those whose
    declaration could not be read. `web_directory` is the absolute folder of its front-end files, if any.
    """

    name: str
    path: str
    status: PackStatus
    module: str | None = None
    nodes: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    declared: int = 0
    seconds: float = 0.0
    slow: bool = False
    error: str | None = None
    traceback: str | None = None
    web_directory: str | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("nodes", "ignored", "warnings", "rejected"):
            data[key] = list(data[key])
        data["count"] = self.count
        return data

    @property
    def count(self) -> str:
        """ "N of M nodes" for display."""
        return f"{len(self.nodes)} of {self.declared} nodes"


@dataclass(frozen=True, slots=True)
class PackEntry:
    """A pack found on disk, before it is imported."""

    name: str
    path: Path
    kind: PackKind
    disabled: bool = False


def discover(roots: Iterable[Path], disabled: Collection[str] = ()) -> list[PackEntry]:
    """Every pack under `roots`, in load order. Dot-folders, `__pycache__` and non-Python files are skipped."""
    entries: list[PackEntry] = []
    seen_roots: set[Path] = set()
    for root in roots:
        root = Path(root).resolve()
        if root in seen_roots or not root.is_dir():
            continue
        seen_roots.add(root)
        for path in sorted(root.iterdir(), key=lambda p: p.name):
            entry = _entry(path, disabled)
            if entry is not None:
                entries.append(entry)
    return entries


def _entry(path: Path, disabled: Collection[str]) -> PackEntry | None:
    name = path.name
    if name.startswith((".", "__")):
        return None
    off = name.endswith(DISABLED_SUFFIX)
    if off:
        name = name[: -len(DISABLED_SUFFIX)]
    if path.is_dir():
        kind: PackKind = "package"
    elif name.endswith(".py"):
        kind, name = "module", name[:-3]
    else:
        return None
    return PackEntry(name=name, path=path, kind=kind, disabled=off or name in disabled)


def load_packs(
    registry: NodeRegistry,
    roots: Sequence[Path],
    disabled: Collection[str] = (),
    slow_seconds: float = SLOW_SECONDS,
    timeout: float | None = IMPORT_TIMEOUT,
    adapt: Adapt | None = None,
) -> list[PackSummary]:
    """Import and register every pack under `roots` into `registry`; returns one summary per pack found.
    Each import may take `timeout` seconds (None: no limit); past it the pack is reported failed. `adapt`, when
    given, may wrap each pack node's invoke (the host uses it to hand pack nodes its values in the shapes packs
    expect)."""
    summaries: list[PackSummary] = []
    loaded: dict[str, Path] = {}
    for entry in discover(roots, disabled):
        if entry.disabled:
            summaries.append(PackSummary(entry.name, str(entry.path), "disabled"))
            continue
        if entry.name in loaded:
            error = f"a pack named {entry.name!r} was already loaded from {loaded[entry.name]}"
            summaries.append(PackSummary(entry.name, str(entry.path), "failed", error=error))
            continue
        _on_sys_path(entry.path.parent)
        summary = load_pack(registry, entry, slow_seconds, timeout, adapt)
        if summary.status == "ok":
            loaded[entry.name] = entry.path
        summaries.append(summary)
    return summaries


def load_pack(
    registry: NodeRegistry,
    entry: PackEntry,
    slow_seconds: float = SLOW_SECONDS,
    timeout: float | None = IMPORT_TIMEOUT,
    adapt: Adapt | None = None,
) -> PackSummary:
    """Import one pack and register its nodes one by one: a class Loom cannot read is rejected, the rest load."""
    module_name = f"{PACK_MODULE_PREFIX}.{entry.name.replace('.', '_')}"
    start = time.perf_counter()

    def summary(status: PackStatus, **details: Any) -> PackSummary:
        seconds = time.perf_counter() - start
        return PackSummary(
            entry.name,
            str(entry.path),
            status,
            module=module_name,
            seconds=seconds,
            slow=seconds > slow_seconds,
            **details,
        )

    try:
        with guarded(entry.name, timeout, slow_seconds):
            module = _import(entry, module_name)
            registration = _register(registry, module, entry, adapt)
        web_dir, web_warnings = _web_directory(module, entry)
    except PackImportTimeout as exc:
        _forget(module_name)
        return summary("failed", error=f"PackImportTimeout: {exc}", traceback=traceback.format_exc())
    except (Exception, SystemExit) as exc:
        _forget(module_name)  # a failed pack leaves nothing behind
        return summary("failed", error=_describe(exc, entry), traceback=traceback.format_exc())
    return summary(
        "ok",
        nodes=registration.nodes,
        ignored=registration.ignored,
        rejected=registration.rejected,
        declared=registration.declared,
        web_directory=str(web_dir) if web_dir else None,
        warnings=registration.warnings + web_warnings,
    )


def _on_sys_path(folder: Path) -> None:
    """Packs often import themselves or a sibling pack by folder name, which needs their folder on sys.path."""
    if str(folder) not in sys.path:
        sys.path.append(str(folder))


def _import(entry: PackEntry, module_name: str) -> ModuleType:
    if entry.kind == "package":
        init = entry.path / "__init__.py"
        if not init.is_file():
            raise ImportError(f"folder {entry.path} has no __init__.py, so it is not a Python package")
        spec = importlib.util.spec_from_file_location(module_name, init, submodule_search_locations=[str(entry.path)])
    else:
        spec = importlib.util.spec_from_file_location(module_name, entry.path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {entry.path}")
    _forget(module_name)  # a stale copy from an earlier load in this process (tests, reloads)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _forget(module_name: str) -> None:
    for name in [n for n in sys.modules if n == module_name or n.startswith(module_name + ".")]:
        del sys.modules[name]


@dataclass(frozen=True, slots=True)
class _Registration:
    declared: int
    nodes: tuple[str, ...]
    ignored: tuple[str, ...]
    rejected: tuple[Rejected, ...]
    warnings: tuple[str, ...]


def _register(registry: NodeRegistry, module: ModuleType, entry: PackEntry, adapt: Adapt | None) -> _Registration:
    """Read each node class of the pack on its own and add the ones that read, in declaration order."""
    declared = _declared_classes(module, registry.env)
    rejected: list[Rejected] = []
    warnings: list[str] = []
    specs: list[NodeSpec] = []
    for class_type, build in declared:
        try:
            spec = build()
        except Exception as exc:  # a class whose INPUT_TYPES or schema raises, or cannot be read at all
            reason = str(exc) if isinstance(exc, SpecError) else f"{type(exc).__name__}: {exc}"
            rejected.append(Rejected(class_type, reason))
            warnings.append(f"node {class_type!r} is rejected: {reason}")
            continue
        warnings.extend(spec.warnings)
        if adapt is not None:
            spec.invoke = adapt(spec)
        specs.append(spec)
    nodes: list[str] = []
    ignored: list[str] = []
    for spec in specs:
        if spec.class_type in nodes:
            warnings.append(f"node {spec.class_type!r} is defined twice in this pack; the first is kept")
        elif registry.add_spec(spec, source=entry.name):
            nodes.append(spec.class_type)
        else:
            ignored.append(spec.class_type)
            warnings.append(f"node {spec.class_type!r} is ignored: {registry.source(spec.class_type)} defines it first")
    return _Registration(len(declared), tuple(nodes), tuple(ignored), tuple(rejected), tuple(warnings))


def _declared_classes(module: ModuleType, env: Any) -> list[tuple[str, Any]]:
    """(name, build spec) for every node the pack offers: its `@node` objects, NODE_CLASS_MAPPINGS, or the node
    list of its `comfy_entrypoint()` extension when it has no mappings."""
    python_module = module.__name__
    pack = python_module.rpartition(".")[2]
    found: list[tuple[str, Any]] = [
        (obj.class_type, lambda obj=obj: obj.to_spec(env, python_module=python_module, pack=pack))
        for obj in vars(module).values()
        if isinstance(obj, NativeNode)
    ]
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
    if mappings is None and callable(getattr(module, "comfy_entrypoint", None)):
        for cls in _entrypoint_nodes(module):
            name = getattr(cls, "__name__", repr(cls))
            found.append((name, lambda cls=cls: spec_from_class(None, cls, python_module=python_module, pack=pack)))
        return found
    if mappings is None:
        return found
    if not isinstance(mappings, Mapping):
        raise SpecError(f"NODE_CLASS_MAPPINGS must be a dict, got {type(mappings).__name__}")
    names = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None)
    if not isinstance(names, Mapping):
        names = {}
    for class_type, cls in mappings.items():
        found.append(
            (
                str(class_type),
                lambda c=class_type, cls=cls: spec_from_class(
                    str(c), cls, names.get(c), python_module=python_module, pack=pack
                ),
            )
        )
    return found


def _entrypoint_nodes(module: ModuleType) -> list[Any]:
    """The V3 way in: `comfy_entrypoint()` gives an extension; `on_load()`, then `get_node_list()` (either may be
    async)."""
    extension = _settle(module.comfy_entrypoint())
    on_load = getattr(extension, "on_load", None)
    if callable(on_load):
        _settle(on_load())
    nodes = _settle(extension.get_node_list())
    if not isinstance(nodes, list | tuple):
        raise SpecError(f"comfy_entrypoint().get_node_list() must return a list, got {type(nodes).__name__}")
    return list(nodes)


def _settle(value: Any) -> Any:
    """The value itself, or an awaitable's result, run on a private event loop (in a helper thread when this
    thread already runs one, as when packs load inside an async server start)."""
    if not inspect.isawaitable(value):
        return value
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_private(value)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pack-entrypoint") as pool:
        return pool.submit(_run_private, value).result()


def _run_private(value: Any) -> Any:
    """Run an awaitable on a new loop that is never made this thread's current one."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_await(value))
    finally:
        loop.close()


async def _await(value: Any) -> Any:
    return await value


def _web_directory(module: ModuleType, entry: PackEntry) -> tuple[Path | None, tuple[str, ...]]:
    """The pack's front-end folder; a WEB_DIRECTORY naming no folder is a warning, not a failure of the pack."""
    declared = getattr(module, "WEB_DIRECTORY", None)
    if declared is None:
        return None, ()
    if not isinstance(declared, str | Path):
        return None, (f"WEB_DIRECTORY must be a path string, got {type(declared).__name__}",)
    base = entry.path if entry.kind == "package" else entry.path.parent
    folder = (base / declared).resolve()
    if not folder.is_dir():
        return None, (f"WEB_DIRECTORY {str(declared)!r} is not a folder ({folder})",)
    return folder, ()


def _describe(exc: BaseException, entry: PackEntry) -> str:
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ModuleNotFoundError) and entry.kind == "package":
        requirements = entry.path / "requirements.txt"
        if requirements.is_file():
            message += f" (install the pack's dependencies: pip install -r {requirements})"
    return message


def format_summary(summaries: Sequence[PackSummary]) -> str:
    """The start-up table: one line per pack with its status, import time, node count and what went wrong."""
    counts = {s: sum(1 for p in summaries if p.status == s) for s in ("ok", "failed", "disabled")}
    lines = [
        f"Custom node packs: {counts['ok']} loaded, {counts['failed']} failed, {counts['disabled']} disabled",
        f"  {'status':<9}{'import':>8}{'nodes':>12}  {'pack':<28}note",
    ]
    for pack in summaries:
        status = {"ok": "ok", "failed": "FAILED", "disabled": "disabled"}[pack.status]
        seconds = f"{pack.seconds:.2f}s" if pack.status != "disabled" else "-"
        notes = []
        if pack.slow:
            notes.append("SLOW import")
        if pack.error:
            notes.append(pack.error.splitlines()[0])
        notes.extend(pack.warnings)
        if pack.web_directory:
            notes.append(f"front-end: /extensions/{pack.name}/")
        count = f"{len(pack.nodes)} of {pack.declared}" if pack.status == "ok" else "-"
        lines.append(f"  {status:<9}{seconds:>8}{count:>12}  {pack.name:<28}{'; '.join(notes)}")
    return "\n".join(lines)
