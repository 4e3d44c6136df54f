"""DYNPROMPT's view of a run: prompt nodes, expanded ones, their parents and display nodes."""

from __future__ import annotations

import pytest

from engine.dynprompt import DynamicPrompt, NodeNotFoundError
from engine.workflow import parse_api


def test_ephemeral_nodes_chain_to_their_prompt_node() -> None:
    original = parse_api({"1": {"class_type": "A", "inputs": {"x": 1}}, "2": {"class_type": "B", "inputs": {}}})
    dyn = DynamicPrompt(original, dict(original.nodes))
    dyn.add_ephemeral_node("2:a", {"class_type": "C", "inputs": {"v": ["1", 0], "w": {"__value__": [1, 2]}}}, "2", "2")
    dyn.add_ephemeral_node("2:a:b", {"class_type": "D", "inputs": {}}, "2:a", "1")
    assert dyn.get_node("2:a") == {"class_type": "C", "inputs": {"v": ["1", 0], "w": [1, 2]}}
    assert dyn.all_node_ids() == {"1", "2", "2:a", "2:a:b"} and dyn.has_node("2:a:b")
    assert dyn.get_real_node_id("2:a:b") == "2" and dyn.get_parent_node_id("2:a:b") == "2:a"
    assert dyn.get_parent_node_id("1") is None and dyn.get_display_node_id("2:a") == "2"
    assert dyn.get_display_node_id("2:a:b") == "1"
    assert set(dyn.get_original_prompt()) == {"1", "2"}
    with pytest.raises(NodeNotFoundError):
        dyn.get_node("9")
    with pytest.raises(KeyError):  # packs catch KeyError
        dyn.get_node("9")
