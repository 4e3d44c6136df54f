"""What packs expect of the host's `nodes` module, served by Loom's own `nodes` package through its `__getattr__`
(`MAX_RESOLUTION` comes from nodes.latent).

`NODE_CLASS_MAPPINGS` is a read-only view of the registry: a pack's protocol class is returned as it is; a
native node comes wrapped in a small protocol class (INPUT_TYPES, RETURN_TYPES, FUNCTION = "execute") so a pack
can read its schema or call it. `nodes.<ClassType>` gives the same class.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from typing import Any

from compat.host import bound, refuse
from engine.context import current_context
from engine.results import normalise
from engine.spec import NodeSpec


class NodeClassView(Mapping[str, type]):
    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self._wrappers: dict[str, type] = {}

    def __getitem__(self, class_type: str) -> type:
        spec = self._registry.get(class_type)
        if spec is None:
            raise KeyError(class_type)
        original = _protocol_class(spec)
        if original is not None:
            return original
        if class_type not in self._wrappers:
            self._wrappers[class_type] = _wrap(spec)
        return self._wrappers[class_type]

    def __iter__(self) -> Iterator[str]:
        return iter([spec.class_type for spec in self._registry])

    def __len__(self) -> int:
        return len(self._registry)


def _protocol_class(spec: NodeSpec) -> type | None:
    """The class a protocol node was registered from, found again through its module's NODE_CLASS_MAPPINGS."""
    mappings = getattr(sys.modules.get(spec.python_module), "NODE_CLASS_MAPPINGS", None)
    cls = mappings.get(spec.class_type) if isinstance(mappings, Mapping) else None
    return cls if isinstance(cls, type) else None


def _wrap(spec: NodeSpec) -> type:
    def input_types(cls: type) -> dict[str, Any]:
        return spec.schema()["input"]

    def execute(self: Any, **inputs: Any) -> Any:
        if spec.wants_context:
            inputs["__context__"] = current_context()
        return _as_protocol_result(spec, spec.invoke(inputs))

    return type(
        spec.class_type,
        (),
        {
            "INPUT_TYPES": classmethod(input_types),
            "RETURN_TYPES": tuple(o.type for o in spec.outputs),
            "RETURN_NAMES": tuple(o.name for o in spec.outputs),
            "OUTPUT_IS_LIST": tuple(o.is_list for o in spec.outputs),
            "FUNCTION": "execute",
            "CATEGORY": spec.category,
            "DESCRIPTION": spec.description,
            "OUTPUT_NODE": spec.output_node,
            "execute": execute,
            "__module__": spec.python_module,
        },
    )


def _as_protocol_result(spec: NodeSpec, raw: Any) -> Any:
    """A native node's return value in the protocol's shape: a tuple, or a `{"result", "ui"}` dict."""
    result = normalise(spec, raw, spec.class_type)
    return {"result": result.outputs, "ui": result.ui} if result.ui else result.outputs


def host_attribute(name: str) -> Any:
    """`nodes.NAME` for packs: the mappings, or a registered node class by its type name."""
    host = bound()
    if host is None or name.startswith("__"):
        # Unbound (packs disabled) it must stay a plain AttributeError: `from nodes import latent` probes with it.
        raise AttributeError(f"module 'nodes' has no attribute {name!r}")
    registry = host.registry
    if host.node_classes is None:
        host.node_classes = NodeClassView(registry)
    view = host.node_classes
    if name == "NODE_CLASS_MAPPINGS":
        return view
    if name == "NODE_DISPLAY_NAME_MAPPINGS":
        return {spec.class_type: spec.display_name for spec in registry}
    if name in view:
        return view[name]
    refuse("nodes", name)
