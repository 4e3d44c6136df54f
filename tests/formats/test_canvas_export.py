"""API format -> canvas format, and round trips through both."""

from __future__ import annotations

import pytest

from formats.canvas import canvas_to_api
from formats.canvas_export import COLUMN_WIDTH, add_widget_slots, api_to_canvas, update_canvas_widgets
from formats.problems import WorkflowFileError
from tests.formats.canvas_nodes import registry
from tests.formats.test_canvas import EXPECTED, pipeline

REG = registry()


def test_api_to_canvas_and_back_gives_the_same_workflow() -> None:
    canvas = api_to_canvas(EXPECTED, REG)
    assert canvas_to_api(canvas, REG) == EXPECTED


def test_canvas_nodes_are_laid_out_in_columns_by_depth() -> None:
    canvas = api_to_canvas(EXPECTED, REG)
    x = {n["id"]: n["pos"][0] for n in canvas["nodes"]}
    assert x == {1: 0, 2: COLUMN_WIDTH, 3: 2 * COLUMN_WIDTH, 4: 3 * COLUMN_WIDTH, 5: 4 * COLUMN_WIDTH}
    sample = next(n for n in canvas["nodes"] if n["type"] == "Sample")
    assert sample["widgets_values"] == [5, "fixed", 4, 7.0, "euler", 1.0]
    names = [i["name"] for i in sample["inputs"]]
    assert names == ["model", "positive", "latent", "seed", "steps", "cfg", "sampler_name", "denoise"]
    # every widget has its slot, as current front ends write them (client libraries read widget names there)
    assert all(i["widget"] == {"name": i["name"]} and i["link"] is None for i in sample["inputs"][3:])
    assert canvas["links"][0][5] in ("MODEL", "CLIP")
    assert canvas["last_link_id"] == len(canvas["links"]) == 5


def test_linked_widget_becomes_a_widget_input_and_odd_ids_get_numbers() -> None:
    api = {
        "n:1": {"class_type": "Number", "inputs": {"value": 4}},
        "7": {"class_type": "Scale", "inputs": {"samples": ["8", 0], "factor": {"__value__": [1, 2]}}},
        "8": {"class_type": "Sample", "inputs": {"steps": ["n:1", 0], "seed": 3}, "_meta": {"title": "Mine"}},
    }
    canvas = api_to_canvas(api, REG)
    sample = next(n for n in canvas["nodes"] if n["type"] == "Sample")
    assert sample["title"] == "Mine"
    steps = next(i for i in sample["inputs"] if i["name"] == "steps")
    assert steps["widget"] == {"name": "steps"} and steps["link"] is not None
    number = next(n for n in canvas["nodes"] if n["type"] == "Number")
    assert number["id"] == 9
    back = canvas_to_api(canvas, REG)
    assert back["8"]["inputs"]["steps"] == ["9", 0]
    assert back["7"]["inputs"]["factor"] == {"__value__": [1, 2]}


def test_unknown_types_and_dangling_links_are_reported() -> None:
    with pytest.raises(WorkflowFileError) as err:
        api_to_canvas({"1": {"class_type": "Nope", "inputs": {}}, "2": {"class_type": "Zip"}}, REG)
    assert err.value.missing_node_types == ["Nope", "Zip"]
    with pytest.raises(WorkflowFileError, match="links to missing output 0 of node 9"):
        api_to_canvas({"1": {"class_type": "Save", "inputs": {"samples": ["9", 0]}}}, REG)


def test_update_canvas_widgets_writes_api_values_back_and_keeps_the_rest() -> None:
    canvas = pipeline()
    canvas["nodes"][2]["properties"]["mine"] = 1
    api = canvas_to_api(canvas, REG)
    api["3"]["inputs"].update(seed=7, steps=9)
    api["5"]["inputs"]["filename_prefix"] = {"__value__": ["a", "b"]}
    updated = update_canvas_widgets(canvas, api, REG)
    assert updated["nodes"][2]["widgets_values"] == [7, "randomize", 9, 7.0, "euler", 1.0]
    assert updated["nodes"][4]["widgets_values"] == [["a", "b"]]
    assert updated["nodes"][2]["properties"]["mine"] == 1
    assert canvas_to_api(updated, REG)["3"]["inputs"]["seed"] == 7
    assert canvas["nodes"][2]["widgets_values"][0] == 5  # the original is untouched


def test_add_widget_slots_appends_the_missing_ones_only() -> None:
    canvas = pipeline()
    sample = next(n for n in canvas["nodes"] if n["type"] == "Sample")
    sample["inputs"].append({"name": "steps", "type": "INT", "widget": {"name": "steps"}, "link": None})
    before = [dict(i) for i in sample["inputs"]]
    out = add_widget_slots(canvas, REG)
    slots = next(n for n in out["nodes"] if n["type"] == "Sample")["inputs"]
    assert slots[: len(before)] == before  # linked slots keep their numbers
    assert [i["name"] for i in slots[len(before) :]] == ["seed", "cfg", "sampler_name", "denoise"]
    assert canvas_to_api(out, REG) == canvas_to_api(canvas, REG)
