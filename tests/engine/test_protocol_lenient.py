"""Protocol node classes are read as leniently as the reference reads them; what is odd is kept and warned about."""

from __future__ import annotations

from typing import Any

import pytest

from engine.protocol import spec_from_class
from engine.spec import SpecError
from engine.types import ANY, types_compatible


class AnyType(str):
    """The ecosystem's "any type" trick: a string that compares equal to every type name."""

    def __ne__(self, other: object) -> bool:
        return False


def node_class(inputs: dict[str, Any], **attrs: Any) -> type:
    body: dict[str, Any] = {
        "RETURN_TYPES": ("INT",),
        "FUNCTION": "run",
        "INPUT_TYPES": classmethod(lambda cls: inputs),
        "run": lambda self, **kw: (len(kw),),
    }
    body.update(attrs)
    return type("Lenient", (), body)


def test_an_input_in_required_and_optional_keeps_the_required_one() -> None:
    cls = node_class({"required": {"x": ("INT", {"default": 1})}, "optional": {"x": ("FLOAT",), "y": ("STRING",)}})
    spec = spec_from_class("Dup", cls)
    assert [(i.name, i.kind, i.type) for i in spec.inputs] == [("x", "required", "INT"), ("y", "optional", "STRING")]
    assert any("'x' is declared again under 'optional'" in w for w in spec.warnings)
    assert spec.schema()["input"]["optional"] == {"y": ["STRING"]}


def test_hidden_inputs_given_a_combo_or_options_are_accepted() -> None:
    cls = node_class(
        {
            "required": {},
            "hidden": {"uid": "UNIQUE_ID", "mode": (["a", "b"],), "extra": ("STRING", {"default": ""}), "odd": {}},
        }
    )
    spec = spec_from_class("Hidden", cls)
    hidden = {i.name: i.hidden for i in spec.inputs}
    assert hidden == {"uid": "UNIQUE_ID", "mode": "mode", "extra": "STRING", "odd": "odd"}
    assert all(i.kind == "hidden" for i in spec.inputs)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (("INT", {"default": 50, "min": 0, "max": 10}), "lies outside [0, 10]"),
        ((["a", "b"], {"default": "c"}), "not among the choices"),
        (("FLOAT", {"default": "1.5"}), "not a number"),
        (("INT", {"default": 1, "min": 5, "max": 2}), "min 5 is greater than max 2"),
        (("BOOLEAN", {"default": "yes"}), "not a boolean"),
    ],
)
def test_a_default_that_does_not_fit_is_kept_with_a_warning(entry: tuple, problem: str) -> None:
    spec = spec_from_class("Odd", node_class({"required": {"v": entry}}))
    assert spec.input("v").default == entry[1]["default"]
    assert any(problem in w and w.endswith("(kept)") for w in spec.warnings)


def test_a_default_given_as_a_one_item_list_is_unwrapped_and_three_element_tuples_read() -> None:
    cls = node_class({"required": {"w": ("INT", {"default": [512], "min": 64}, "extra"), "s": ("STRING",)}})
    spec = spec_from_class("Shapes", cls)
    assert spec.input("w").default == 512 and spec.input("w").min == 64
    assert spec.warnings == []


def test_a_class_without_function_registers_and_fails_only_when_run() -> None:
    cls = node_class({"required": {}}, FUNCTION=None)
    spec = spec_from_class("NoFunction", cls)
    assert any("cannot run" in w for w in spec.warnings)
    with pytest.raises(SpecError, match="'NoFunction' cannot run: its FUNCTION None names no method"):
        spec.invoke({})


def test_the_any_type_trick_is_a_socket_accepting_every_type() -> None:
    anything = AnyType("*")
    cls = node_class({"required": {"value": (anything, {})}}, RETURN_TYPES=(anything, AnyType("")))
    spec = spec_from_class("Passthrough", cls)
    assert spec.input("value").type == ANY and spec.input("value").choices is None
    assert [o.type for o in spec.outputs] == [ANY, ANY]
    assert types_compatible("IMAGE", spec.input("value").type) and types_compatible(spec.outputs[0].type, "MODEL")
    assert spec.schema()["input"]["required"]["value"] == ["*"]


def test_unknown_sections_are_skipped_with_a_warning() -> None:
    spec = spec_from_class("Extra", node_class({"required": {"a": ("INT",)}, "ui": {"b": ("INT",)}}))
    assert [i.name for i in spec.inputs] == ["a"]
    assert any("['ui'] are not inputs" in w for w in spec.warnings)


@pytest.mark.parametrize(
    ("inputs", "detail"),
    [
        ({"required": {"a": 5}}, "expected (TYPE,) or (TYPE, options)"),
        ({"required": {"a": (5,)}}, "the type must be a string or a list of choices"),
        ({"required": {"a": ("INT", "min=0")}}, "options must be a dict"),
    ],
)
def test_what_cannot_be_read_at_all_is_still_refused(inputs: dict, detail: str) -> None:
    with pytest.raises(SpecError, match=r"node 'Bad', input 'a'"):
        spec_from_class("Bad", node_class(inputs))
    with pytest.raises(SpecError) as caught:
        spec_from_class("Bad", node_class(inputs))
    assert detail in str(caught.value)
