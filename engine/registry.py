"""The node registry: every node type Loom knows, whichever API it was written with.

This is the one place that holds process-wide node state; the host builds one at start-up (built-in nodes, then
custom packs) and hands it to the executor, the server and the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from engine.environment import NodeEnvironment
from engine.native import NativeNode
from engine.protocol import spec_from_class
from engine.spec import NodeSpec, SpecError


@dataclass(frozen=True, slots=True)
class Clash:
    """A node type that two sources both define; the first registered keeps it."""

    class_type: str
    kept: str
    ignored: str


class NodeRegistry:
    def __init__(self, env: NodeEnvironment | None = None) -> None:
        self.env = env
        self._specs: dict[str, NodeSpec] = {}
        self._sources: dict[str, str] = {}
        self.clashes: list[Clash] = []

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._specs

    def __iter__(self) -> Iterator[NodeSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, class_type: str) -> NodeSpec | None:
        return self._specs.get(class_type)

    def source(self, class_type: str) -> str | None:
        """Where a node type came from: "builtin" or a pack name."""
        return self._sources.get(class_type)

    def add_spec(self, spec: NodeSpec, source: str = "builtin") -> bool:
        """Register a spec; on a name clash the first keeps it and the clash is recorded. True when added."""
        if spec.class_type in self._specs:
            self.clashes.append(Clash(spec.class_type, self._sources[spec.class_type], source))
            return False
        self._specs[spec.class_type] = spec
        self._sources[spec.class_type] = source
        return True

    def add_native(self, native: NativeNode, source: str = "builtin", python_module: str = "nodes") -> bool:
        pack = None if source == "builtin" else source
        return self.add_spec(native.to_spec(self.env, python_module=python_module, pack=pack), source)

    def add_protocol(
        self,
        mappings: Mapping[str, type],
        display_names: Mapping[str, str] | None = None,
        source: str = "builtin",
        python_module: str = "custom_nodes",
    ) -> list[str]:
        """Register a pack's NODE_CLASS_MAPPINGS; returns the names added. A bad class raises SpecError."""
        if not isinstance(mappings, Mapping):
            raise SpecError(f"NODE_CLASS_MAPPINGS must be a dict, got {type(mappings).__name__}")
        names = display_names or {}
        pack = None if source == "builtin" else source
        specs = [
            spec_from_class(class_type, cls, names.get(class_type), python_module=python_module, pack=pack)
            for class_type, cls in mappings.items()
        ]
        return [s.class_type for s in specs if self.add_spec(s, source)]

    def add_module(self, module: ModuleType, source: str = "builtin") -> list[str]:
        """Register every `@node` in a module (in definition order) and its NODE_CLASS_MAPPINGS, if any."""
        added = [
            obj.class_type
            for obj in vars(module).values()
            if isinstance(obj, NativeNode) and self.add_native(obj, source, python_module=module.__name__)
        ]
        mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
        if mappings is not None:
            display = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None)
            added += self.add_protocol(mappings, display, source, python_module=module.__name__)
        return added

    def add_all(self, natives: Iterable[NativeNode], source: str = "builtin") -> None:
        for native in natives:
            self.add_native(native, source)

    def object_info(self) -> dict[str, Any]:
        """The `/object_info` catalogue; a node whose INPUT_TYPES fails now is left out rather than failing all."""
        info: dict[str, Any] = {}
        for spec in self._specs.values():
            try:
                info[spec.class_type] = spec.schema()
            except SpecError:
                continue
        return info
