from __future__ import annotations

from engine.plan import Plan, find_cycles, link_sources
from engine.workflow import parse_api


def test_find_cycles_on_deep_chains_and_loops() -> None:
    chain = {str(i): [str(i - 1)] if i else [] for i in range(5000)}
    assert find_cycles(chain, lambda n: chain[n]) == []
    loop = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    cycles = find_cycles(loop, lambda n: loop[n])
    assert len(cycles) == 1 and sorted(cycles[0]) == ["a", "b", "c"]


def test_plan_is_a_dag_of_ready_nodes_and_skips_lazy_links() -> None:
    wf = parse_api(
        {
            "1": {"class_type": "C", "inputs": {}},
            "2": {"class_type": "C", "inputs": {}},
            "3": {"class_type": "J", "inputs": {"a": ["1", 0], "b": ["2", 0], "lazy": ["4", 0]}},
            "4": {"class_type": "C", "inputs": {}},
            "5": {"class_type": "C", "inputs": {}},
        }
    )
    plan = Plan(wf, lambda node_id, name: name == "lazy", lambda node_id: False)
    plan.require(["3"])
    assert sorted(plan.ready) == ["1", "2"]  # independent: both ready at once
    assert "4" not in plan.waiting and "5" not in plan.waiting
    plan.finish(plan.ready.popleft())
    assert list(plan.ready) == ["2"]
    plan.finish(plan.ready.popleft())
    assert list(plan.ready) == ["3"]
    plan.ready.popleft()
    assert plan.wait_on("3", ["4"]) is True and list(plan.ready) == ["4"]
    plan.finish(plan.ready.popleft())
    assert list(plan.ready) == ["3"]
    assert cycles_free(wf)


def cycles_free(wf) -> bool:
    return find_cycles(wf.nodes, link_sources(wf)) == []


def test_resolved_nodes_are_not_descended() -> None:
    wf = parse_api({"1": {"class_type": "C", "inputs": {}}, "2": {"class_type": "C", "inputs": {"a": ["1", 0]}}})
    plan = Plan(wf, lambda n, name: False, lambda node_id: node_id == "2")
    plan.require(["2"])
    assert plan.finished == {"2"} and not plan.ready and "1" not in plan.waiting
