from __future__ import annotations

import pytest

from engine.workflow import Link, WorkflowError, parse_api


def test_links_literals_wrapped_lists_and_titles() -> None:
    wf = parse_api(
        {
            "1": {"class_type": "A", "inputs": {"x": 3, "pair": ["x", "y"], "wrapped": {"__value__": ["5", 0]}}},
            "2": {"class_type": "B", "inputs": {"a": ["1", 0]}, "_meta": {"title": "Bee"}},
        }
    )
    assert wf["2"].inputs["a"] == Link("1", 0) and type(wf["2"].inputs["a"]) is Link
    assert wf["1"].inputs["pair"] == ["x", "y"]
    assert wf["1"].inputs["wrapped"] == ["5", 0] and type(wf["1"].inputs["wrapped"]) is list
    assert wf["2"].title == "Bee" and wf["1"].title is None
    assert wf.find("Bee") is wf["2"] and wf.find("1") is wf["1"] and wf.find("nope") is None


def test_to_api_round_trips() -> None:
    data = {
        "1": {"class_type": "A", "inputs": {"x": 3, "items": {"__value__": [1, 2]}}},
        "2": {"class_type": "B", "inputs": {"a": ["1", 0]}, "_meta": {"title": "Bee"}},
    }
    assert parse_api(data).to_api() == data


@pytest.mark.parametrize(
    ("body", "needle", "error_type"),
    [
        ([], "object of nodes", "invalid_prompt"),
        ({"1": 5}, "node 1", "invalid_prompt"),
        ({"1": {"inputs": {}}}, "class_type", "missing_node_type"),
        ({"1": {"class_type": "A", "inputs": [1]}}, "inputs must be an object", "invalid_prompt"),
    ],
)
def test_malformed_bodies(body: object, needle: str, error_type: str) -> None:
    with pytest.raises(WorkflowError) as info:
        parse_api(body)
    assert info.value.type == error_type
    assert needle in str(info.value)
