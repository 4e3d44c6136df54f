"""Every class Loom shares with the reference has the reference's /object_info shape: input names and order, types,
defaults, limits, choices, widget options, outputs, display names, categories and flags (canvas files store widget
values by position, and clients build requests from these schemas). The fixture is typed by hand from the
reference's public node definitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.registry import NodeRegistry

# One fixture file per area (reference_schemas.json, reference_schemas_sampling.json, ...), each class in one file.
FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("reference_schemas*.json"))
REFERENCE: dict[str, Any] = {
    k: v for fixture in FIXTURES for k, v in json.loads(fixture.read_text()).items() if not k.startswith("_")
}
OPTIONS = (
    "default",
    "min",
    "max",
    "step",
    "round",
    "multiline",
    "dynamicPrompts",
    "display",
    "control_after_generate",
    "image_upload",
    "image_folder",
)
# Loom names its files after itself where the reference's defaults name the reference.
BRANDING = ("ComfyUI", "Loom")


def _options(options: dict[str, Any]) -> dict[str, Any]:
    picked = {k: options[k] for k in OPTIONS if k in options}
    if isinstance(picked.get("default"), str):
        picked["default"] = picked["default"].replace(*BRANDING)
    return picked


def _input_shape(entry: list[Any]) -> tuple[Any, dict[str, Any]]:
    head = entry[0]
    options = entry[1] if len(entry) > 1 else {}
    return head, _options(options)


def _loom_inputs(schema: dict[str, Any], group: str) -> list[tuple[str, Any, dict[str, Any]]]:
    inputs = schema["input"].get(group, {})
    return [(name, *_input_shape(inputs[name])) for name in schema["input_order"].get(group, [])]


def _reference_inputs(ref: dict[str, Any], group: str) -> list[tuple[str, Any, dict[str, Any]]]:
    return [(name, head, _options(options)) for name, head, options in ref[group]]


def _same_input(loom: tuple[str, Any, dict[str, Any]], ref: tuple[str, Any, dict[str, Any]]) -> bool:
    name, head, options = loom
    ref_name, ref_head, ref_options = ref
    # choices read at run time (files, samplers): any list, or the protocol's COMBO marker, will do
    same_head = (isinstance(head, list) or head == "COMBO") if ref_head == "COMBO" else head == ref_head
    return name == ref_name and same_head and options == ref_options


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    import nodes

    registry = NodeRegistry(None)
    nodes.register_builtin(registry)
    return registry.object_info()


@pytest.mark.parametrize("class_type", sorted(REFERENCE))
def test_schema_matches_the_reference(object_info: dict[str, Any], class_type: str) -> None:
    ref = REFERENCE[class_type]
    assert class_type in object_info, f"{class_type} is not registered"
    schema = object_info[class_type]
    for group in ("required", "optional"):
        loom, expected = _loom_inputs(schema, group), _reference_inputs(ref, group)
        assert [i[0] for i in loom] == [i[0] for i in expected], f"{group} input order"
        for got, want in zip(loom, expected, strict=True):
            assert _same_input(got, want), f"{group} input {want[0]}: {got[1:]} != {want[1:]}"
    assert schema["input"].get("hidden", {}) == ref["hidden"]
    assert schema["output"] == ref["output"]
    assert schema["output_name"] == ref["output_name"]
    assert schema["output_node"] == ref["output_node"]
    assert schema["display_name"] == ref["display_name"]
    assert schema["category"] == ref["category"]
    assert schema.get("deprecated", False) == ref.get("deprecated", False)
    assert schema.get("experimental", False) == ref.get("experimental", False)


def test_each_class_is_typed_in_one_fixture() -> None:
    classes = [k for fixture in FIXTURES for k in json.loads(fixture.read_text()) if not k.startswith("_")]
    assert len(classes) == len(set(classes)) == len(REFERENCE)


def test_input_comparison_notices_a_reordering() -> None:
    a = ("width", "INT", {"default": 1})
    assert _same_input(a, a)
    assert not _same_input(a, ("height", "INT", {"default": 1}))
    assert not _same_input(("mode", ["a", "b"], {}), ("mode", ["b", "a"], {}))
    assert _same_input(("ckpt", ["x.safetensors"], {}), ("ckpt", "COMBO", {}))
