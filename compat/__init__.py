"""Host-module compatibility: the few modules protocol-style node packs import by name, mapped to Loom's services.

`install(host)`, called before packs are imported, adds a meta path finder that imports them under the
ecosystem's names into `sys.modules`; it stays installed, since packs also import them inside node functions:

- `folder_paths`: model folder lists and full paths, input/output/temp directories, save-path helper;
- `comfy.utils`: `ProgressBar`; `comfy.model_management`: device, cache freeing, interrupts;
- `comfy.comfy_types` (and `.node_typing`): `IO`, `ComfyNodeABC`, `InputTypeDict`;
- `comfy_execution.graph_utils`: `GraphBuilder`, `is_link`; `comfy_execution.graph`: `ExecutionBlocker`.

`nodes` and `server` are Loom's own packages, which carry what packs expect of them (`nodes.MAX_RESOLUTION`,
`nodes.NODE_CLASS_MAPPINGS`, `server.PromptServer.instance`); see compat.nodes and compat.server.
Anything deeper (`import comfy.sd`, `comfy.utils.load_torch_file`) fails with an ImportError or AttributeError
that names the missing module or attribute. None of these modules imports torch when imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from compat import surface
from compat.host import UNSUPPORTED, Host, bind, unbind
from compat.nodes import host_attribute
from nodes import bind_pack_attributes

__all__ = ["PROVIDED", "Host", "install", "installed", "uninstall"]

_HERE = Path(__file__).resolve().parent

# The shims' top-level names and their sources here; submodules are found inside the packages like any others.
PROVIDED: dict[str, Path] = {
    "folder_paths": _HERE / "folder_paths.py",
    "comfy": _HERE / "comfy",
    "comfy_execution": _HERE / "comfy_execution",
    "comfy_extras": _HERE / "comfy_extras",
    "comfy_api": _HERE / "comfy_api",
    "latent_preview": _HERE / "latent_preview.py",
    "node_helpers": _HERE / "node_helpers.py",
}

# Top-level names of the host's internals: a module under them that the shims lack is refused clearly.
REFUSED_ROOTS = frozenset({*PROVIDED, *surface.ROOTS, "comfy_config"})


class SurfaceLoader(importlib.abc.Loader):
    """Builds a module that exists only as names (compat.surface): placeholders, and node classes on demand."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        namespace = module.__dict__
        namespace["__doc__"] = f"{module.__name__}: names only; Loom has no machinery behind them (compat.surface)."
        surface.complete(namespace)
        namespace["__getattr__"] = lambda name: surface.resolve(namespace, name)


class HostModuleFinder(importlib.abc.MetaPathFinder):
    """Imports the shims under the ecosystem's names and turns `import comfy.sd` into an error that names it."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        root = fullname.partition(".")[0]
        if root not in REFUSED_ROOTS:
            return None
        spec = None
        source = PROVIDED.get(fullname)
        if source is not None and source.is_dir():
            spec = importlib.util.spec_from_file_location(
                fullname, source / "__init__.py", submodule_search_locations=[str(source)]
            )
        elif source is not None:
            spec = importlib.util.spec_from_file_location(fullname, source)
        elif root in PROVIDED and path is not None:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        declared = surface.declared(fullname)
        if spec is None and declared is not None:
            spec = importlib.util.spec_from_loader(fullname, SurfaceLoader(), is_package=declared.package)
        if spec is None:
            # ImportError, not ModuleNotFoundError: `from comfy import sd` would swallow the latter and say less.
            raise ImportError(f"Loom does not provide {fullname} ({UNSUPPORTED})", name=fullname)
        return spec


def install(host: Host) -> Host:
    """Bind `host` and make the shims importable under the ecosystem's names (idempotent; rebinding is allowed)."""
    bind(host)
    bind_pack_attributes(host_attribute)
    if not installed():
        sys.meta_path.insert(0, HostModuleFinder())
    return host


def installed() -> bool:
    return any(isinstance(finder, HostModuleFinder) for finder in sys.meta_path)


def uninstall() -> None:
    """Remove the shims and the binding (tests use this to leave the process as they found it)."""
    for name in [n for n in sys.modules if n.partition(".")[0] in REFUSED_ROOTS]:
        del sys.modules[name]
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, HostModuleFinder)]
    unbind()
    bind_pack_attributes(None)
    shim_server = sys.modules.get("compat.server")
    if shim_server is not None:  # forget the routes and sender of the packs loaded so far
        shim_server.PromptServer.instance = shim_server.PromptServer()
