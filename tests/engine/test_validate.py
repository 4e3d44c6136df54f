from __future__ import annotations

from typing import Any

from engine.validate import validate
from engine.workflow import parse_api


def check(lab: Any, data: dict, targets: list[str] | None = None):
    return validate(parse_api(data), lab.registry, targets)


def only_error(result: Any, node_id: str) -> dict:
    errors = result.to_response()["node_errors"][node_id]["errors"]
    assert len(errors) == 1, errors
    return errors[0]


def test_valid_workflow_coerces_numeric_strings(lab: Any) -> None:
    wf = parse_api(
        {
            "1": {"class_type": "Const", "inputs": {"value": "7"}},
            "2": {"class_type": "Half", "inputs": {"a": ["1", 0], "scale": "0.25"}},
            "3": {"class_type": "Sink", "inputs": {"a": ["1", 0]}},
        }
    )
    result = validate(wf, lab.registry)
    assert result.ok and result.outputs == ("3",) and result.node_errors == {}
    assert wf["1"].inputs["value"] == 7 and type(wf["1"].inputs["value"]) is int
    assert validate(wf, lab.registry).ok


def test_unknown_class_is_missing_node_type(lab: Any) -> None:
    result = check(lab, {"1": {"class_type": "Nope", "inputs": {}}, "2": {"class_type": "Sink", "inputs": {}}})
    assert not result.ok
    response = result.to_response()
    assert response["error"]["type"] == "missing_node_type" and "Nope" in response["error"]["message"]
    assert response["error"]["extra_info"]["node_id"] == "1"
    assert only_error(result, "1")["type"] == "missing_node_type"


def test_no_outputs(lab: Any) -> None:
    result = check(lab, {"1": {"class_type": "Const", "inputs": {"value": 1}}})
    assert result.to_response()["error"]["type"] == "prompt_no_outputs"
    assert check(lab, {"1": {"class_type": "Sink", "inputs": {}}}, targets=["9"]).error["type"] == "prompt_no_outputs"


def test_required_input_missing(lab: Any) -> None:
    result = check(lab, {"1": {"class_type": "Sink", "inputs": {}}})
    err = only_error(result, "1")
    assert err["type"] == "required_input_missing" and err["extra_info"]["input_name"] == "a"
    assert result.error["type"] == "prompt_outputs_failed_validation"
    assert result.to_response()["node_errors"]["1"]["class_type"] == "Sink"


def test_required_widget_missing_is_an_error_even_with_a_default(lab: Any) -> None:
    """As API clients expect: a required input left out of a prompt is reported, never silently defaulted."""
    result = check(
        lab,
        {
            "1": {"class_type": "Const", "inputs": {"value": 1}},
            "2": {"class_type": "Inc", "inputs": {"a": ["1", 0]}},
            "3": {"class_type": "Sink", "inputs": {"a": ["2", 0]}},
        },
    )
    err = only_error(result, "2")
    assert err["type"] == "required_input_missing" and err["extra_info"]["input_name"] == "k"
    assert err["extra_info"]["input_config"][1]["default"] == 1


def test_bad_links(lab: Any) -> None:
    result = check(
        lab,
        {
            "1": {"class_type": "Const", "inputs": {"value": 1}},
            "2": {"class_type": "Add", "inputs": {"a": ["9", 0], "b": ["1", 3]}},
            "3": {"class_type": "Sink", "inputs": {"a": ["2", 0]}},
        },
    )
    errors = {e["extra_info"]["input_name"]: e for e in result.to_response()["node_errors"]["2"]["errors"]}
    assert errors["a"]["type"] == "bad_linked_input" and "9" in errors["a"]["message"]
    assert errors["b"]["type"] == "bad_linked_input" and "output 3" in errors["b"]["message"]


def test_return_type_mismatch(lab: Any) -> None:
    result = check(
        lab,
        {
            "1": {"class_type": "Const", "inputs": {"value": 1}},
            "2": {"class_type": "Half", "inputs": {"a": ["1", 0]}},
            "3": {"class_type": "Sink", "inputs": {"a": ["2", 0]}},
        },
    )
    err = only_error(result, "3")
    assert err["type"] == "return_type_mismatch" and err["extra_info"]["input_name"] == "a"
    assert "FLOAT" in err["message"]


def test_invalid_input_type_and_ranges(lab: Any) -> None:
    result = check(
        lab,
        {
            "1": {"class_type": "Const", "inputs": {"value": "abc"}},
            "2": {"class_type": "Const", "inputs": {"value": -1}},
            "3": {"class_type": "Const", "inputs": {"value": 5000}},
            "4": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0], "k": [1, 2]}},
            "5": {"class_type": "Add", "inputs": {"a": ["4", 0], "b": ["3", 0]}},
            "6": {"class_type": "Sink", "inputs": {"a": ["5", 0]}},
        },
    )
    assert only_error(result, "1")["type"] == "invalid_input_type"
    low = only_error(result, "2")
    assert low["type"] == "value_smaller_than_min" and low["extra_info"]["received_value"] == -1
    assert only_error(result, "3")["type"] == "value_bigger_than_max"
    k = only_error(result, "4")
    assert k["type"] == "invalid_input_type" and k["extra_info"]["input_name"] == "k"
    assert result.to_response()["node_errors"]["2"]["dependent_outputs"] == ["6"]


def test_value_not_in_list(lab: Any) -> None:
    result = check(
        lab,
        {
            "1": {"class_type": "Const", "inputs": {"value": 1}},
            "2": {"class_type": "PickMode", "inputs": {"mode": "medium", "a": ["1", 0]}},
            "3": {"class_type": "Sink", "inputs": {"a": ["2", 0]}},
        },
    )
    err = only_error(result, "2")
    assert err["type"] == "value_not_in_list" and err["extra_info"]["input_name"] == "mode"
    assert "fast" in err["message"]


def test_validate_inputs_replaces_builtin_checks(lab: Any) -> None:
    def run(n: Any) -> Any:
        return check(
            lab,
            {"1": {"class_type": "Even", "inputs": {"n": n}}, "2": {"class_type": "Sink", "inputs": {"a": ["1", 0]}}},
        )

    assert run(40).ok  # above max 10, but VALIDATE_INPUTS names n, so only it decides
    err = only_error(run(3), "1")
    assert err["type"] == "custom_validation_failed" and "even" in err["message"]
    assert only_error(run(13), "1")["type"] == "exception_during_validation"


def test_input_types_receives_linked_types_and_skips_type_check(lab: Any) -> None:
    result = check(
        lab,
        {
            "1": {"class_type": "Const", "inputs": {"value": 1}},
            "2": {"class_type": "Typed", "inputs": {"x": ["1", 0]}},
            "3": {"class_type": "Half", "inputs": {"a": ["1", 0]}},
            "4": {"class_type": "Sink", "inputs": {"a": ["1", 0]}},
            "5": {"class_type": "Collect", "inputs": {"values": ["2", 0]}},
        },
    )
    assert result.ok, result.to_response()
    assert lab.seen["input_types"] == {"x": "INT"}


def test_dependency_cycle_names_the_nodes(lab: Any) -> None:
    result = check(
        lab,
        {
            "1": {"class_type": "Inc", "inputs": {"a": ["3", 0], "k": 1}, "_meta": {"title": "first"}},
            "2": {"class_type": "Inc", "inputs": {"a": ["1", 0], "k": 1}},
            "3": {"class_type": "Inc", "inputs": {"a": ["2", 0], "k": 1}},
            "4": {"class_type": "Sink", "inputs": {"a": ["3", 0]}},
        },
    )
    errors = result.to_response()["node_errors"]
    assert set(errors) == {"1", "2", "3"}
    message = errors["2"]["errors"][0]["message"]
    assert errors["2"]["errors"][0]["type"] == "dependency_cycle"
    assert "1 (first)" in message and "3" in message and errors["1"]["dependent_outputs"] == ["4"]


def test_exception_reading_inputs(lab: Any) -> None:
    class Broken:
        @classmethod
        def INPUT_TYPES(cls):
            if getattr(cls, "broken", False):
                raise OSError("disk gone")
            return {"required": {}}

        RETURN_TYPES = ()
        OUTPUT_NODE = True
        FUNCTION = "run"

        def run(self):
            return {}

    lab.registry.add_protocol({"Broken": Broken})
    Broken.broken = True
    result = check(lab, {"1": {"class_type": "Broken", "inputs": {}}})
    err = only_error(result, "1")
    assert err["type"] == "exception_during_validation" and "disk gone" in err["message"]


def test_every_problem_at_once_and_targets(lab: Any) -> None:
    data = {
        "1": {"class_type": "Const", "inputs": {"value": -5}},
        "2": {"class_type": "Sink", "inputs": {"a": ["1", 0]}},
        "3": {"class_type": "Sink", "inputs": {}},
        "4": {"class_type": "Const", "inputs": {"value": 2}},
        "5": {"class_type": "Sink", "inputs": {"a": ["4", 0]}},
    }
    result = check(lab, data)
    assert set(result.node_errors) == {"1", "3"} and len(result.messages()) == 2
    partial = check(lab, data, targets=["5"])
    assert partial.ok and partial.outputs == ("5",)
