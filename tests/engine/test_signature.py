from __future__ import annotations

from typing import Any

from engine.signature import Signer
from engine.workflow import parse_api


def signer(lab: Any, data: dict) -> Signer:
    wf = parse_api(data)
    return Signer(wf, {n.class_type: lab.registry.get(n.class_type) for n in wf.nodes.values()})


def graph(value: int = 1, k: int = 1, ids: tuple[str, str, str] = ("1", "2", "3")) -> dict:
    a, b, c = ids
    return {
        a: {"class_type": "Const", "inputs": {"value": value}},
        b: {"class_type": "Inc", "inputs": {"a": [a, 0], "k": k}},
        c: {"class_type": "Sink", "inputs": {"a": [b, 0]}},
    }


def test_identical_subgraphs_share_signatures_whatever_the_ids(lab: Any) -> None:
    one = signer(lab, graph()).sign_all(["3"])
    other = signer(lab, graph(ids=("x", "y", "z"))).sign_all(["z"])
    assert [one[i] for i in "123"] == [other[i] for i in "xyz"]
    assert len(one["3"]) == 16


def test_a_changed_widget_changes_only_it_and_downstream(lab: Any) -> None:
    before = signer(lab, graph(k=1)).sign_all(["3"])
    after = signer(lab, graph(k=2)).sign_all(["3"])
    assert before["1"] == after["1"]
    assert before["2"] != after["2"] and before["3"] != after["3"]


def test_fingerprints_and_node_id_binding(lab: Any) -> None:
    data = {"1": {"class_type": "Watched", "inputs": {"name": "f"}}}
    lab.fingerprints["Watched"] = "mtime-1"
    first = signer(lab, data)("1")
    assert signer(lab, data)("1") == first
    lab.fingerprints["Watched"] = "mtime-2"
    assert signer(lab, data)("1") != first
    lab.fingerprints["Watched"] = float("nan")
    s = signer(lab, data)
    assert s("1") != signer(lab, data)("1") and s.volatile == {"1"}
    uniq = {"1": {"class_type": "Unique", "inputs": {"v": 3}}, "2": {"class_type": "Unique", "inputs": {"v": 3}}}
    s = signer(lab, uniq)
    assert s("1") != s("2")
    hidden = {"1": {"class_type": "Hidden", "inputs": {"a": 1}}, "2": {"class_type": "Hidden", "inputs": {"a": 1}}}
    s = signer(lab, hidden)
    assert s("1") != s("2")


def test_deep_chains_sign_without_recursion(lab: Any) -> None:
    data = {"0": {"class_type": "Const", "inputs": {"value": 1}}}
    for i in range(1, 5000):
        data[str(i)] = {"class_type": "Inc", "inputs": {"a": [str(i - 1), 0]}}
    assert len(signer(lab, data).sign_all(["4999"])) == 5000
