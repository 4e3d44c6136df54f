"""`nodes.NODE_CLASS_MAPPINGS` for packs: a read-only view of the registry, classes callable as the protocol's."""

from __future__ import annotations

import pytest

import compat
from compat.nodes import NodeClassView, host_attribute
from engine.context import NodeContext
from engine.environment import NodeEnvironment
from engine.native import Int, Out, node


class Protocolish:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"x": ("INT", {"default": 1})}}

    def run(self, x: int) -> tuple[int]:
        return (x,)


@node(category="math", outputs=[Out("INT", "twice")])
def Twice(ctx: NodeContext, x: int = Int(2, min=0)) -> int:
    return x * 2


def test_view_wraps_native_nodes_as_protocol_classes(host: compat.Host) -> None:
    host.registry.add_native(Twice, python_module=__name__)
    view = NodeClassView(host.registry)
    cls = view["Twice"]
    assert cls.INPUT_TYPES() == {"required": {"x": ["INT", {"default": 2, "min": 0}]}}
    assert (cls.RETURN_TYPES, cls.RETURN_NAMES, cls.FUNCTION, cls.CATEGORY) == (("INT",), ("twice",), "execute", "math")
    assert getattr(cls(), cls.FUNCTION)(x=5) == (10,)
    assert list(view) == ["Twice"] and len(view) == 1 and "Missing" not in view
    with pytest.raises(KeyError):
        view["Missing"]
    with pytest.raises(TypeError):
        view["Twice"] = cls  # type: ignore[index]


def test_protocol_class_from_a_module_is_returned_as_is(host: compat.Host) -> None:
    import sys

    module = sys.modules[__name__]
    module.NODE_CLASS_MAPPINGS = {"Protocolish": Protocolish}  # type: ignore[attr-defined]
    try:
        host.registry.add_module(module, source="test")
        assert host_attribute("NODE_CLASS_MAPPINGS")["Protocolish"] is Protocolish
        assert host_attribute("Protocolish") is Protocolish
        assert host_attribute("NODE_DISPLAY_NAME_MAPPINGS")["Protocolish"] == "Protocolish"
    finally:
        del module.NODE_CLASS_MAPPINGS  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match=r"does not provide nodes\.no_such_name"):
        host_attribute("no_such_name")


def test_loom_nodes_package_answers_as_the_host_module(host: compat.Host) -> None:
    import nodes

    host.registry.add_native(Twice, python_module=__name__)
    assert nodes.MAX_RESOLUTION == 16384
    assert nodes.NODE_CLASS_MAPPINGS["Twice"].RETURN_TYPES == ("INT",)
    assert nodes.Twice is nodes.NODE_CLASS_MAPPINGS["Twice"]
    from nodes import latent

    assert latent.MAX_RESOLUTION == nodes.MAX_RESOLUTION


def test_unbound_host_attribute_is_a_plain_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'latent'"):
        host_attribute("latent")


def test_packs_can_read_and_call_builtin_nodes(host: compat.Host) -> None:
    import nodes

    host.registry.env = NodeEnvironment(host.folders)
    nodes.register_builtin(host.registry)
    cls = nodes.NODE_CLASS_MAPPINGS["EmptyLatentImage"]
    assert cls.INPUT_TYPES()["required"]["width"][1]["max"] == nodes.MAX_RESOLUTION
    (latent,) = getattr(cls(), cls.FUNCTION)(width=64, height=32, batch_size=2)
    assert tuple(latent["samples"].shape) == (2, 4, 4, 8)
