"""Canvas-format documents (hand-written here from the format's description) converted to the API format."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engine.errors import ErrorType
from formats.canvas import canvas_to_api, convert_canvas, is_canvas, map_widget_values, widget_inputs
from formats.problems import WorkflowFileError
from tests.formats.canvas_nodes import registry

REG = registry()


def cnode(
    node_id: int,
    type_: str,
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    widgets: Any = None,
    mode: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    node = {"id": node_id, "type": type_, "pos": [0, 0], "size": [200, 100], "flags": {}, "order": 0, "mode": mode}
    node["inputs"] = inputs or []
    node["outputs"] = outputs or []
    node["properties"] = {"Node name for S&R": type_}
    if widgets is not None:
        node["widgets_values"] = widgets
    node.update(extra)
    return node


def inp(name: str, type_: str, link: int | None, widget: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "type": type_, "link": link}
    if widget:
        entry["widget"] = {"name": widget}
    return entry


def out(name: str, type_: str, links: list[int]) -> dict[str, Any]:
    return {"name": name, "type": type_, "links": links}


def pipeline() -> dict[str, Any]:
    """Loader -> Encode -> Sample -> Scale -> Save, as the canvas saves it."""
    return {
        "last_node_id": 5,
        "last_link_id": 5,
        "nodes": [
            cnode(1, "Loader", [], [out("MODEL", "MODEL", [1]), out("CLIP", "CLIP", [2])], ["tiny.safetensors"]),
            cnode(2, "Encode", [inp("clip", "CLIP", 2)], [out("CONDITIONING", "CONDITIONING", [3])], ["a cat"]),
            cnode(
                3,
                "Sample",
                [inp("model", "MODEL", 1), inp("positive", "CONDITIONING", 3), inp("latent", "LATENT", None)],
                [out("LATENT", "LATENT", [4])],
                [5, "randomize", 4, 7.0, "euler", 1.0],
            ),
            cnode(4, "Scale", [inp("samples", "LATENT", 4)], [out("LATENT", "LATENT", [5])], [2.0]),
            cnode(5, "Save", [inp("samples", "LATENT", 5)], [], ["pic"]),
        ],
        "links": [
            [1, 1, 0, 3, 0, "MODEL"],
            [2, 1, 1, 2, 0, "CLIP"],
            [3, 2, 0, 3, 1, "CONDITIONING"],
            [4, 3, 0, 4, 0, "LATENT"],
            [5, 4, 0, 5, 0, "LATENT"],
        ],
        "groups": [{"title": "Prompt", "bounding": [0, 0, 500, 300]}],
        "config": {},
        "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}},
        "version": 0.4,
    }


EXPECTED = {
    "1": {"class_type": "Loader", "inputs": {"ckpt_name": "tiny.safetensors"}},
    "2": {"class_type": "Encode", "inputs": {"clip": ["1", 1], "text": "a cat"}},
    "3": {
        "class_type": "Sample",
        "inputs": {
            "model": ["1", 0],
            "positive": ["2", 0],
            "seed": 5,
            "steps": 4,
            "cfg": 7.0,
            "sampler_name": "euler",
            "denoise": 1.0,
        },
    },
    "4": {"class_type": "Scale", "inputs": {"samples": ["3", 0], "factor": 2.0}},
    "5": {"class_type": "Save", "inputs": {"samples": ["4", 0], "filename_prefix": "pic"}},
}


def node_of(canvas: dict[str, Any], node_id: int) -> dict[str, Any]:
    return next(n for n in canvas["nodes"] if n["id"] == node_id)


def test_pipeline_widgets_follow_declaration_order_with_control_value_skipped() -> None:
    canvas = pipeline()
    before = copy.deepcopy(canvas)
    assert is_canvas(canvas)
    assert canvas_to_api(canvas, REG) == EXPECTED
    assert canvas == before  # conversion never edits the document it reads


def test_widget_order_is_required_then_optional() -> None:
    spec = REG.get("Sample")
    assert spec is not None
    assert [w.name for w in widget_inputs(spec)] == ["seed", "steps", "cfg", "sampler_name", "denoise"]


def test_values_without_control_value_are_read_positionally() -> None:
    canvas = pipeline()
    node_of(canvas, 3)["widgets_values"] = [5, 4, 7.0, "euler", 1.0]
    assert canvas_to_api(canvas, REG)["3"] == EXPECTED["3"]


def test_missing_trailing_values_are_left_to_defaults_and_extra_ones_ignored() -> None:
    spec = REG.get("Sample")
    assert spec is not None
    assert map_widget_values(widget_inputs(spec), [5, "fixed", 4]) == {"seed": 5, "steps": 4}
    assert map_widget_values(widget_inputs(REG.get("Scale")), [2.0, "image"]) == {"factor": 2.0}  # type: ignore[arg-type]


def test_widget_values_as_object_by_name() -> None:
    canvas = pipeline()
    node_of(canvas, 3)["widgets_values"] = {"steps": 4, "seed": 5, "cfg": 7.0, "sampler_name": "euler", "x": 1}
    assert canvas_to_api(canvas, REG)["3"]["inputs"] == EXPECTED["3"]["inputs"]  # denoise: its default


def test_widgets_a_file_has_no_value_for_are_sent_with_their_defaults() -> None:
    """A file saved before a node gained widgets still runs: the server rejects a missing required input."""
    canvas = pipeline()
    node_of(canvas, 3)["widgets_values"] = [5, "fixed"]
    inputs = canvas_to_api(canvas, REG)["3"]["inputs"]
    spec = REG.get("Sample")
    assert spec is not None
    defaults = {w.name: w.default for w in widget_inputs(spec)}
    assert inputs["seed"] == 5
    assert {k: inputs[k] for k in ("steps", "cfg", "sampler_name", "denoise")} == {
        k: defaults[k] for k in ("steps", "cfg", "sampler_name", "denoise")
    }


def test_links_as_objects() -> None:
    canvas = pipeline()
    canvas["links"] = [
        {"id": k[0], "origin_id": k[1], "origin_slot": k[2], "target_id": k[3], "target_slot": k[4], "type": k[5]}
        for k in canvas["links"]
    ]
    assert canvas_to_api(canvas, REG) == EXPECTED


def test_title_becomes_meta_title() -> None:
    canvas = pipeline()
    node_of(canvas, 3)["title"] = "Main sampler"
    assert canvas_to_api(canvas, REG)["3"]["_meta"] == {"title": "Main sampler"}
    assert "_meta" not in canvas_to_api(canvas, REG)["4"]


def test_primitive_node_value_is_inlined_into_the_widget_it_feeds() -> None:
    canvas = pipeline()
    prim = cnode(9, "PrimitiveNode", [], [{"name": "INT", "type": "INT", "links": [9], "widget": {"name": "seed"}}])
    prim["widgets_values"] = [42, "fixed"]
    canvas["nodes"].append(prim)
    node_of(canvas, 3)["inputs"].append(inp("seed", "INT", 9, widget="seed"))
    canvas["links"].append([9, 9, 0, 3, 3, "INT"])
    api = canvas_to_api(canvas, REG)
    assert api["3"]["inputs"]["seed"] == 42
    assert "9" not in api


def test_widget_converted_to_input_takes_the_link() -> None:
    canvas = pipeline()
    canvas["nodes"].append(cnode(8, "Number", [], [out("INT", "INT", [8])], [11]))
    node_of(canvas, 3)["inputs"].append(inp("steps", "INT", 8, widget="steps"))
    node_of(canvas, 3)["inputs"].append(inp("cfg", "FLOAT", None, widget="cfg"))  # converted, unlinked: keeps value
    canvas["links"].append([8, 8, 0, 3, 3, "INT"])
    api = canvas_to_api(canvas, REG)
    assert api["3"]["inputs"]["steps"] == ["8", 0]
    assert api["3"]["inputs"]["cfg"] == 7.0
    assert api["8"] == {"class_type": "Number", "inputs": {"value": 11}}


def test_reroutes_are_followed_through() -> None:
    canvas = pipeline()
    canvas["nodes"] += [
        cnode(20, "Reroute", [inp("", "*", 1)], [out("", "MODEL", [20])]),
        cnode(21, "Reroute", [inp("", "*", 20)], [out("", "MODEL", [21])]),
    ]
    canvas["links"][0] = [1, 1, 0, 20, 0, "MODEL"]
    canvas["links"] += [[20, 20, 0, 21, 0, "MODEL"], [21, 21, 0, 3, 0, "MODEL"]]
    node_of(canvas, 3)["inputs"][0]["link"] = 21
    api = canvas_to_api(canvas, REG)
    assert api["3"]["inputs"]["model"] == ["1", 0]
    assert "20" not in api and "21" not in api


@pytest.mark.parametrize("mode", [2, 4])
def test_muted_or_bypassed_reroute_still_passes_through(mode: int) -> None:
    canvas = pipeline()
    canvas["nodes"].append(cnode(20, "Reroute", [inp("", "*", 1)], [out("", "MODEL", [20])], mode=mode))
    canvas["links"][0] = [1, 1, 0, 20, 0, "MODEL"]
    canvas["links"].append([20, 20, 0, 3, 0, "MODEL"])
    node_of(canvas, 3)["inputs"][0]["link"] = 20
    conversion = convert_canvas(canvas, REG)
    assert conversion.api == EXPECTED and conversion.notes == [] and conversion.problems == []


def test_muted_primitive_still_gives_its_value() -> None:
    canvas = pipeline()
    prim = cnode(9, "PrimitiveNode", [], [{"name": "INT", "type": "INT", "links": [9], "widget": {"name": "seed"}}])
    prim["widgets_values"] = [42, "fixed"]
    prim["mode"] = 2
    canvas["nodes"].append(prim)
    node_of(canvas, 3)["inputs"].append(inp("seed", "INT", 9, widget="seed"))
    canvas["links"].append([9, 9, 0, 3, 3, "INT"])
    api = canvas_to_api(canvas, REG)
    assert api["3"]["inputs"]["seed"] == 42 and set(api) == set(EXPECTED)


def test_output_node_cut_off_by_a_muted_node_is_named_in_the_notes() -> None:
    canvas = pipeline()
    node_of(canvas, 3)["mode"] = 2
    node_of(canvas, 3)["title"] = "Main sampler"
    conversion = convert_canvas(canvas, REG)
    assert set(conversion.api) == {"1", "2"} and conversion.problems == []
    assert conversion.notes == ["output node 5 (Save) is left out: it depends on muted node 3 (Main sampler)"]


def test_muted_node_is_dropped_with_what_depends_only_on_it() -> None:
    canvas = pipeline()
    node_of(canvas, 4)["mode"] = 2
    canvas["nodes"].append(cnode(6, "Save", [inp("samples", "LATENT", 6)], [], ["direct"]))
    canvas["links"].append([6, 3, 0, 6, 0, "LATENT"])
    api = canvas_to_api(canvas, REG)
    assert set(api) == {"1", "2", "3", "6"}


def test_link_from_muted_node_into_optional_input_is_just_left_out() -> None:
    canvas = pipeline()
    canvas["nodes"].append(cnode(7, "Scale", [inp("samples", "LATENT", None)], [out("LATENT", "LATENT", [7])], [1.0]))
    node_of(canvas, 7)["mode"] = 2
    node_of(canvas, 3)["inputs"][2]["link"] = 7
    canvas["links"].append([7, 7, 0, 3, 2, "LATENT"])
    api = canvas_to_api(canvas, REG)
    assert set(api) == {"1", "2", "3", "4", "5"}
    assert "latent" not in api["3"]["inputs"]


def test_bypassed_node_passes_its_input_of_the_same_type_through() -> None:
    canvas = pipeline()
    node_of(canvas, 4)["mode"] = 4
    api = canvas_to_api(canvas, REG)
    assert "4" not in api
    assert api["5"]["inputs"]["samples"] == ["3", 0]


def test_bypass_chain_and_bypass_without_matching_input() -> None:
    canvas = pipeline()
    canvas["nodes"].append(cnode(6, "Scale", [inp("samples", "LATENT", 5)], [out("LATENT", "LATENT", [6])], [3.0]))
    node_of(canvas, 5)["inputs"][0]["link"] = 6
    canvas["links"][4] = [5, 4, 0, 6, 0, "LATENT"]
    canvas["links"].append([6, 6, 0, 5, 0, "LATENT"])
    node_of(canvas, 4)["mode"] = 4
    node_of(canvas, 6)["mode"] = 4
    assert canvas_to_api(canvas, REG)["5"]["inputs"]["samples"] == ["3", 0]
    node_of(canvas, 2)["mode"] = 4  # Encode has no CONDITIONING input to pass on
    assert "positive" not in canvas_to_api(canvas, REG)["3"]["inputs"]


def test_bypassed_node_of_unknown_type_passes_through_without_a_problem() -> None:
    canvas = pipeline()
    node_of(canvas, 4)["type"] = "SomePackUpscale"
    node_of(canvas, 4)["mode"] = 4
    assert canvas_to_api(canvas, REG)["5"]["inputs"]["samples"] == ["3", 0]


def test_notes_and_groups_are_ignored() -> None:
    canvas = pipeline()
    canvas["nodes"] += [cnode(30, "Note", widgets=["remember"]), cnode(31, "MarkdownNote", widgets=["# hi"])]
    assert canvas_to_api(canvas, REG) == EXPECTED


def test_list_widget_values_are_wrapped_so_they_do_not_read_as_links() -> None:
    canvas = pipeline()
    node_of(canvas, 5)["widgets_values"] = [["a", 1]]
    assert canvas_to_api(canvas, REG)["5"]["inputs"]["filename_prefix"] == {"__value__": ["a", 1]}


def test_unknown_node_types_are_reported_together_by_name() -> None:
    canvas = pipeline()
    canvas["nodes"] += [cnode(40, "FancyUpscaler"), cnode(41, "MagicLoRA"), cnode(42, "Ghost", mode=2)]
    with pytest.raises(WorkflowFileError) as err:
        canvas_to_api(canvas, REG)
    assert err.value.missing_node_types == ["FancyUpscaler", "MagicLoRA"]
    body = err.value.to_response()
    assert body["error"]["type"] == "missing_node_type" and body["error"]["extra_info"]["node_id"] == "40"
    assert body["error"]["extra_info"]["missing_node_types"] == ["FancyUpscaler", "MagicLoRA"]
    assert body["node_errors"]["40"]["errors"][0]["type"] == ErrorType.MISSING_NODE_TYPE
    assert body["node_errors"]["41"]["class_type"] == "MagicLoRA"


def test_malformed_entries_are_reported() -> None:
    canvas = pipeline()
    canvas["nodes"].append({"type": "Save"})
    canvas["links"].append(["x"])
    with pytest.raises(WorkflowFileError) as err:
        canvas_to_api(canvas, REG)
    assert len(err.value.problems) == 2


def subgraph_canvas() -> dict[str, Any]:
    """Sample wrapped in a subgraph whose inputs are model, positive and a promoted seed widget."""
    canvas = pipeline()
    sg_id = "3f0c2a9e-0000-4000-8000-000000000001"
    inner_sample = cnode(
        1,
        "Sample",
        [
            inp("model", "MODEL", 101),
            inp("positive", "CONDITIONING", 102),
            inp("seed", "INT", 103, widget="seed"),
        ],
        [out("LATENT", "LATENT", [104])],
        [1, "fixed", 6, 5.0, "ddim", 0.5],
    )
    canvas["definitions"] = {
        "subgraphs": [
            {
                "id": sg_id,
                "name": "Sampling",
                "inputNode": {"id": -10, "bounding": [0, 0, 100, 100]},
                "outputNode": {"id": -20, "bounding": [400, 0, 100, 100]},
                "inputs": [
                    {"id": "a", "name": "model", "type": "MODEL", "linkIds": [101]},
                    {"id": "b", "name": "positive", "type": "CONDITIONING", "linkIds": [102]},
                    {"id": "c", "name": "seed", "type": "INT", "linkIds": [103]},
                ],
                "outputs": [{"id": "d", "name": "LATENT", "type": "LATENT", "linkIds": [104]}],
                "widgets": [],
                "nodes": [inner_sample, cnode(2, "Note", widgets=["inside"])],
                "links": [
                    {"id": 101, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "MODEL"},
                    {"id": 102, "origin_id": -10, "origin_slot": 1, "target_id": 1, "target_slot": 1, "type": "*"},
                    {"id": 103, "origin_id": -10, "origin_slot": 2, "target_id": 1, "target_slot": 2, "type": "INT"},
                    {"id": 104, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "LATENT"},
                ],
            }
        ]
    }
    canvas["nodes"][2] = cnode(
        3,
        sg_id,
        [inp("model", "MODEL", 1), inp("positive", "CONDITIONING", 3), inp("seed", "INT", None, widget="seed")],
        [out("LATENT", "LATENT", [4])],
        [99],
    )
    return canvas


def test_subgraph_is_expanded_with_composite_ids_and_promoted_widgets() -> None:
    api = canvas_to_api(subgraph_canvas(), REG)
    assert set(api) == {"1", "2", "3:1", "4", "5"}
    assert api["3:1"]["inputs"] == {
        "model": ["1", 0],
        "positive": ["2", 0],
        "seed": 99,
        "steps": 6,
        "cfg": 5.0,
        "sampler_name": "ddim",
        "denoise": 0.5,
    }
    assert api["4"]["inputs"]["samples"] == ["3:1", 0]


def test_subgraph_inside_a_subgraph() -> None:
    canvas = subgraph_canvas()
    inner_id = canvas["definitions"]["subgraphs"][0]["id"]
    outer = {
        "id": "outer-0000",
        "name": "Wrapper",
        "inputs": [
            {"id": "m", "name": "model", "type": "MODEL", "linkIds": [201]},
            {"id": "p", "name": "positive", "type": "CONDITIONING", "linkIds": [202]},
        ],
        "outputs": [{"id": "o", "name": "LATENT", "type": "LATENT", "linkIds": [203]}],
        "nodes": [
            cnode(
                5,
                inner_id,
                [inp("model", "MODEL", 201), inp("positive", "CONDITIONING", 202), inp("seed", "INT", None, "seed")],
                [out("LATENT", "LATENT", [203])],
                [7],
            )
        ],
        "links": [[201, -10, 0, 5, 0, "MODEL"], [202, -10, 1, 5, 1, "CONDITIONING"], [203, 5, 0, -20, 0, "LATENT"]],
    }
    canvas["definitions"]["subgraphs"].append(outer)
    node_of(canvas, 3)["type"] = "outer-0000"
    node_of(canvas, 3)["inputs"] = node_of(canvas, 3)["inputs"][:2]
    api = canvas_to_api(canvas, REG)
    assert api["3:5:1"]["inputs"]["seed"] == 7
    assert api["3:5:1"]["inputs"]["model"] == ["1", 0]
    assert api["4"]["inputs"]["samples"] == ["3:5:1", 0]


def test_muted_subgraph_drops_its_inside_and_dependants() -> None:
    canvas = subgraph_canvas()
    node_of(canvas, 3)["mode"] = 2
    assert set(canvas_to_api(canvas, REG)) == {"1", "2"}


def test_subgraph_that_contains_itself_is_reported() -> None:
    canvas = subgraph_canvas()
    definition = canvas["definitions"]["subgraphs"][0]
    definition["nodes"].append(cnode(9, definition["id"]))
    with pytest.raises(WorkflowFileError, match="contains itself"):
        canvas_to_api(canvas, REG)


def test_subgraph_proxy_widgets_set_inner_widgets_and_promoted_inputs() -> None:
    canvas = subgraph_canvas()
    instance = node_of(canvas, 3)
    instance["properties"]["proxyWidgets"] = [["1", "steps"], ["-1", "seed"], ["1", "cfg"], ["9", "x"]]
    instance["widgets_values"] = [3, 1234, 2.5, "ignored"]
    inputs = canvas_to_api(canvas, REG)["3:1"]["inputs"]
    assert (inputs["steps"], inputs["seed"], inputs["cfg"], inputs["sampler_name"]) == (3, 1234, 2.5, "ddim")


# Older front ends' group nodes: `extra.groupNodes` {name: {nodes, links, external}}, instances typed `workflow/NAME`.
# Inner links are `[from index, from slot, to index, to slot, from id, type]`; `external` lists `[index, slot, type]`
# outputs that are also used outside the group.


def sampler_group(external: list[list[Any]] | None = None) -> dict[str, Any]:
    """Encode -> Sample inside a group: Encode's `clip`, Sample's `model` and `latent` stay open (group inputs)."""
    return {
        "nodes": [
            {**cnode(0, "Encode", [inp("clip", "CLIP", None)], [out("CONDITIONING", "CONDITIONING", [])]), "index": 0}
            | {"widgets_values": ["group default"]},
            {
                **cnode(
                    1,
                    "Sample",
                    [inp("model", "MODEL", None), inp("positive", "CONDITIONING", None), inp("latent", "LATENT", None)],
                    [out("LATENT", "LATENT", [])],
                    [0, "fixed", 20, 8.0, "euler", 1.0],
                ),
                "index": 1,
            },
        ],
        "links": [[0, 0, 1, 1, 0, "CONDITIONING"]],
        "external": external or [],
    }


def grouped(group_type: str = "workflow/Sampler", **group: Any) -> dict[str, Any]:
    """Loader -> [group Sampler] -> Save, the group node showing clip, model, latent and six widgets."""
    instance = cnode(
        10,
        group_type,
        [inp("clip", "CLIP", 2), inp("model", "MODEL", 1), inp("latent", "LATENT", None)],
        [out("LATENT", "LATENT", [3])],
        ["a fox", 42, "fixed", 12, 6.5, "ddim", 0.9],
    )
    return {
        "nodes": [
            cnode(1, "Loader", [], [out("MODEL", "MODEL", [1]), out("CLIP", "CLIP", [2])], ["tiny.safetensors"]),
            instance,
            cnode(11, "Save", [inp("samples", "LATENT", 3)], [], ["out"]),
        ],
        "links": [[1, 1, 0, 10, 1, "MODEL"], [2, 1, 1, 10, 0, "CLIP"], [3, 10, 0, 11, 0, "LATENT"]],
        "extra": {"groupNodes": {"Sampler": sampler_group(**group)}},
        "version": 0.4,
    }


GROUPED = {
    "1": {"class_type": "Loader", "inputs": {"ckpt_name": "tiny.safetensors"}},
    "10:0": {"class_type": "Encode", "inputs": {"text": "a fox", "clip": ["1", 1]}},
    "10:1": {
        "class_type": "Sample",
        "inputs": {
            "seed": 42,
            "steps": 12,
            "cfg": 6.5,
            "sampler_name": "ddim",
            "denoise": 0.9,
            "model": ["1", 0],
            "positive": ["10:0", 0],
        },
    },
    "11": {"class_type": "Save", "inputs": {"filename_prefix": "out", "samples": ["10:1", 0]}},
}


@pytest.mark.parametrize("group_type", ["workflow/Sampler", "workflow>Sampler"])
def test_group_node_is_expanded_with_its_widgets_and_links_in_and_out(group_type: str) -> None:
    assert canvas_to_api(grouped(group_type), REG) == GROUPED


def test_group_node_widget_values_missing_fall_back_to_the_definitions() -> None:
    canvas = grouped()
    del node_of(canvas, 10)["widgets_values"]
    api = canvas_to_api(canvas, REG)
    assert api["10:0"]["inputs"]["text"] == "group default"
    assert api["10:1"]["inputs"]["steps"] == 20 and api["10:1"]["inputs"]["seed"] == 0


def test_group_node_widget_converted_to_input_takes_its_link() -> None:
    canvas = grouped()
    canvas["nodes"].append(cnode(12, "Number", [], [out("INT", "INT", [4])], [9]))
    node_of(canvas, 10)["inputs"].append(inp("steps", "INT", 4, widget="steps"))
    canvas["links"].append([4, 12, 0, 10, 3, "INT"])
    api = canvas_to_api(canvas, REG)
    assert api["10:1"]["inputs"]["steps"] == ["12", 0]
    assert api["10:1"]["inputs"]["cfg"] == 6.5


def test_group_node_external_output_keeps_an_inner_output_used_inside_visible() -> None:
    """With Encode's output listed as external, the group node shows it first; Save reads the second output."""
    canvas = grouped(external=[[0, 0, "CONDITIONING"]])
    instance = node_of(canvas, 10)
    instance["outputs"] = [out("CONDITIONING", "CONDITIONING", []), out("LATENT", "LATENT", [3])]
    canvas["links"][2] = [3, 10, 1, 11, 0, "LATENT"]
    assert canvas_to_api(canvas, REG)["11"]["inputs"]["samples"] == ["10:1", 0]


def test_group_node_duplicate_input_names_are_prefixed_with_the_inner_title() -> None:
    group = sampler_group()
    negative = copy.deepcopy(group["nodes"][0]) | {"index": 2, "title": "Negative"}
    group["nodes"].append(negative)
    canvas = grouped()
    canvas["extra"]["groupNodes"]["Sampler"] = group
    instance = node_of(canvas, 10)
    instance["inputs"].append(inp("Negative clip", "CLIP", 5))
    instance["widgets_values"].append("blurry")
    canvas["links"].append([5, 1, 1, 10, 3, "CLIP"])
    api = canvas_to_api(canvas, REG)
    assert api["10:2"] == {
        "class_type": "Encode",
        "inputs": {"text": "blurry", "clip": ["1", 1]},
        "_meta": {"title": "Negative"},
    }


def test_group_node_config_renames_an_input() -> None:
    canvas = grouped()
    canvas["extra"]["groupNodes"]["Sampler"]["config"] = {"0": {"input": {"clip": {"name": "text encoder"}}}}
    node_of(canvas, 10)["inputs"][0]["name"] = "text encoder"
    assert canvas_to_api(canvas, REG) == GROUPED


def test_muted_group_node_drops_its_inside_and_dependants() -> None:
    canvas = grouped()
    node_of(canvas, 10)["mode"] = 2
    assert set(canvas_to_api(canvas, REG)) == {"1"}


def test_unknown_group_and_unknown_inner_types_are_reported_clearly() -> None:
    canvas = grouped("workflow/Missing")
    with pytest.raises(WorkflowFileError) as err:
        canvas_to_api(canvas, REG)
    (problem,) = err.value.problems
    assert problem.node_id == "10"
    assert "'Missing'" in problem.message and "extra.groupNodes does not define" in problem.message
    assert "'Sampler'" in problem.message  # what the file does define

    canvas = grouped()
    canvas["extra"]["groupNodes"]["Sampler"]["nodes"][0]["type"] = "FancyEncode"
    with pytest.raises(WorkflowFileError) as err:
        canvas_to_api(canvas, REG)
    assert err.value.missing_node_types == ["FancyEncode"]
    assert "10:0" in err.value.to_response()["node_errors"]


def test_group_node_input_matching_nothing_inside_is_reported() -> None:
    canvas = grouped()
    node_of(canvas, 10)["inputs"][2]["name"] = "vae"
    with pytest.raises(WorkflowFileError, match="input 'vae' of group node 'workflow/Sampler' matches no input"):
        canvas_to_api(canvas, REG)


def test_group_definition_without_input_lists_uses_the_declared_socket_order() -> None:
    canvas = grouped()
    for inner in canvas["extra"]["groupNodes"]["Sampler"]["nodes"]:
        del inner["inputs"]
    assert canvas_to_api(canvas, REG) == GROUPED


def test_group_node_input_into_a_reroute_is_named_after_its_type() -> None:
    canvas = grouped()
    group = canvas["extra"]["groupNodes"]["Sampler"]
    group["nodes"].append({**cnode(2, "Reroute", [inp("", "*", None)], [out("", "*", [])]), "index": 2})
    group["links"].append([2, 0, 1, 0, 2, "MODEL"])  # reroute -> Sample.model, inside the group
    node_of(canvas, 10)["inputs"][1] = inp("MODEL", "MODEL", 1)
    conversion = convert_canvas(canvas, REG)
    assert conversion.problems == []
    assert conversion.api["10:1"]["inputs"]["model"] == ["1", 0]
    assert "10:2" not in conversion.api
