"""Primitive nodes pass their widget value through, with the ecosystem's schema."""

from __future__ import annotations

import sys

import pytest

from tests.nodes.conftest import Run


@pytest.mark.parametrize(
    ("class_type", "value", "out_type"),
    [
        ("PrimitiveInt", -7, "INT"),
        ("PrimitiveFloat", 2.5, "FLOAT"),
        ("PrimitiveString", "hi", "STRING"),
        ("PrimitiveStringMultiline", "a\nb", "STRING"),
        ("PrimitiveBoolean", True, "BOOLEAN"),
    ],
)
def test_primitive_passes_its_value(run: Run, registry, class_type: str, value: object, out_type: str) -> None:
    assert run(class_type, value=value) == value
    schema = registry.get(class_type).schema()
    assert schema["output"] == [out_type]
    assert schema["input_order"] == {"required": ["value"]}
    assert schema["category"] == "utils/primitive"


def test_primitive_widget_options(registry) -> None:
    int_spec = registry.get("PrimitiveInt").schema()["input"]["required"]["value"]
    assert int_spec[0] == "INT"
    assert int_spec[1]["control_after_generate"] is True
    assert int_spec[1]["min"] == -sys.maxsize and int_spec[1]["max"] == sys.maxsize
    assert registry.get("PrimitiveStringMultiline").schema()["input"]["required"]["value"][1]["multiline"] is True
