from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cache import OutputCache
from engine.context import NodeContext, RunControl, current_context
from engine.events import (
    JobFailed,
    JobInterrupted,
    JobStarted,
    JobSucceeded,
    NodeExecuted,
    NodeExecuting,
    NodeFinished,
    NodeProgress,
    NodesCached,
    NodeWarning,
)
from engine.executor import Executor, RunOutcome
from engine.native import Int, Out, Socket, node
from engine.registry import NodeRegistry
from engine.validate import validate
from engine.workflow import parse_api
from tests.engine.conftest import Lab


def run(
    lab: Lab, data: dict, executor: Executor | None = None, extra: dict | None = None, **kw: Any
) -> tuple[RunOutcome, list[Any]]:
    wf = parse_api(data)
    result = validate(wf, lab.registry)
    assert result.ok, result.to_response()
    ex = executor or Executor(lab.registry)
    events: list[Any] = []
    outcome = ex.run(wf, outputs=result.outputs, prompt_id="p1", emit=events.append, extra_data=extra, **kw)
    return outcome, events


def diamond(k: int = 1, value: int = 2) -> dict:
    return {
        "1": {"class_type": "Const", "inputs": {"value": value}},
        "2": {"class_type": "Inc", "inputs": {"a": ["1", 0], "k": k}},
        "3": {"class_type": "Inc", "inputs": {"a": ["1", 0], "k": 10}},
        "4": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": ["3", 0]}},
        "5": {"class_type": "Sink", "inputs": {"a": ["4", 0]}},
        "6": {"class_type": "Const", "inputs": {"value": 99}},  # not needed by any output
    }


def test_runs_only_what_outputs_need_with_events_in_order(lab: Lab) -> None:
    outcome, events = run(lab, diamond())
    assert outcome.status == "success" and outcome.outputs == {"5": {"value": [15]}}
    assert set(outcome.executed) == {"1", "2", "3", "4", "5"}
    assert lab.calls["Const"] == 1
    kinds = [type(e) for e in events]
    assert kinds[:2] == [JobStarted, NodesCached] and kinds[-1] is JobSucceeded
    executing = [e.node for e in events if isinstance(e, NodeExecuting)]
    assert executing.index("1") < executing.index("2") < executing.index("4") < executing.index("5")
    assert kinds[-3] is NodeExecuted and events[-3].output == {"value": [15]}
    finished = [e.node for e in events if isinstance(e, NodeFinished)]
    assert sorted(finished) == sorted(executing) and kinds[-2] is NodeFinished  # each node that ran, after its output


def test_cached_rerun_and_one_changed_widget(lab: Lab) -> None:
    ex = Executor(lab.registry)
    run(lab, diamond(k=1), ex)
    lab.calls.clear()
    outcome, events = run(lab, diamond(k=1), ex)
    assert sum(lab.calls.values()) == 0 and outcome.cached == ("5",)
    cached_events = [e for e in events if isinstance(e, NodesCached)]
    assert len(cached_events) == 1 and cached_events[0].nodes == ("1", "2", "3", "4", "5")  # all held, "5" served
    replay = [e for e in events if isinstance(e, NodeExecuted)]
    assert replay[0].cached and replay[0].output == {"value": [15]} and outcome.outputs["5"] == {"value": [15]}
    outcome, _ = run(lab, diamond(k=5), ex)
    assert set(outcome.executed) == {"2", "4", "5"}
    assert lab.calls == Counter({"Inc": 1, "Add": 1, "Sink": 1})
    assert outcome.outputs["5"] == {"value": [19]}


def test_identical_subgraph_with_other_ids_hits_the_cache(lab: Lab) -> None:
    ex = Executor(lab.registry)
    run(lab, diamond(), ex)
    renamed = {
        f"n{k}": {
            "class_type": v["class_type"],
            "inputs": {name: [f"n{x[0]}", x[1]] if isinstance(x, list) else x for name, x in v["inputs"].items()},
        }
        for k, v in diamond().items()
    }
    lab.calls.clear()
    outcome, _ = run(lab, renamed, ex)
    assert sum(lab.calls.values()) == 0 and outcome.cached == ("n5",)
    assert ex.cache.stats().hits >= 1


def test_fingerprint_change_forces_a_rerun(lab: Lab) -> None:
    data = {
        "1": {"class_type": "Watched", "inputs": {"name": "abc"}},
        "2": {"class_type": "Sink", "inputs": {"a": ["1", 0]}},
    }
    ex = Executor(lab.registry)
    lab.fingerprints["Watched"] = 1
    run(lab, data, ex)
    run(lab, data, ex)
    assert lab.calls["Watched"] == 1
    lab.fingerprints["Watched"] = 2
    run(lab, data, ex)
    assert lab.calls["Watched"] == 2
    always = {"1": {"class_type": "Always", "inputs": {"v": 3}}, "2": {"class_type": "Sink", "inputs": {"a": ["1", 0]}}}
    run(lab, always, ex)
    run(lab, always, ex)
    assert lab.calls["Always"] == 2 and lab.calls["Sink"] == 4  # an always-changed node re-runs its downstream


def test_eviction_under_a_small_memory_bound(lab: Lab) -> None:
    ex = Executor(lab.registry, OutputCache(max_bytes=1))
    run(lab, diamond(), ex)
    assert len(ex.cache) == 0 and ex.cache.stats().evictions == 5  # kept while the job ran, dropped after
    lab.calls.clear()
    run(lab, diamond(), ex)
    assert lab.calls["Sink"] == 1


def test_failing_node_then_fixed_reruns_only_it_and_downstream(lab: Lab) -> None:
    data = {
        "1": {"class_type": "Const", "inputs": {"value": 4}},
        "2": {"class_type": "Boom", "inputs": {"a": ["1", 0], "tag": "bad"}},
        "3": {"class_type": "Sink", "inputs": {"a": ["2", 0]}},
    }
    ex = Executor(lab.registry)
    lab.fail.add("bad")
    outcome, events = run(lab, data, ex)
    assert outcome.status == "error" and isinstance(events[-1], JobFailed)
    err = outcome.error
    assert err is not None and err.node_id == "2" and err.node_type == "Boom"
    assert err.exception_type == "ValueError" and err.exception_message == "boom bad"
    assert any("boom bad" in line for line in err.traceback) and err.executed == ("1",)
    assert err.current_inputs == {"a": 4, "tag": "bad"} and err.current_outputs == ("1",)
    assert not any(isinstance(e, JobSucceeded) for e in events)
    lab.fail.clear()
    lab.calls.clear()
    outcome, _ = run(lab, data, ex)
    assert outcome.status == "success" and outcome.executed == ("2", "3")
    assert lab.calls == Counter({"Boom": 1, "Sink": 1})


def test_lazy_branch_not_evaluated(lab: Lab) -> None:
    def switch(pick: bool) -> dict:
        return {
            "1": {"class_type": "Const", "inputs": {"value": 1}},
            "2": {"class_type": "Boom", "inputs": {"a": ["1", 0], "tag": "never"}},
            "3": {"class_type": "Inc", "inputs": {"a": ["1", 0], "k": 5}},
            "4": {"class_type": "Switch", "inputs": {"pick": pick, "on_true": ["3", 0], "on_false": ["2", 0]}},
            "5": {"class_type": "Sink", "inputs": {"a": ["4", 0]}},
        }

    lab.fail.add("never")
    ex = Executor(lab.registry)
    outcome, _ = run(lab, switch(True), ex)
    assert outcome.status == "success" and outcome.outputs["5"] == {"value": [6]}
    assert lab.calls["Boom"] == 0 and "2" not in outcome.executed
    lab.fail.clear()
    outcome, _ = run(lab, switch(False), ex)
    assert outcome.outputs["5"] == {"value": [10]} and lab.calls["Boom"] == 1 and lab.calls["Inc"] == 1


def test_interrupt_stops_the_job_and_keeps_the_cache_consistent(lab: Lab) -> None:
    data = {
        "1": {"class_type": "Const", "inputs": {"value": 1}},
        "2": {"class_type": "Slow", "inputs": {"a": ["1", 0], "steps": 5}},
        "3": {"class_type": "Sink", "inputs": {"a": ["2", 0]}},
    }
    control = RunControl()
    lab.gate = lambda step: control.interrupt() if step == 2 else None
    ex = Executor(lab.registry)
    outcome, events = run(lab, data, ex, control=control)
    assert outcome.status == "interrupted"
    stop = events[-1]
    assert isinstance(stop, JobInterrupted) and stop.node_id == "2" and stop.executed == ("1",)
    assert [e.value for e in events if isinstance(e, NodeProgress)] == [1, 2, 3]
    lab.gate = None
    lab.calls.clear()
    outcome, _ = run(lab, data, ex)
    assert outcome.status == "success" and lab.calls == Counter({"Slow": 1, "Sink": 1})


def test_interrupt_before_start(lab: Lab) -> None:
    control = RunControl()
    control.interrupt()
    outcome, events = run(lab, diamond(), control=control)
    assert outcome.status == "interrupted" and sum(lab.calls.values()) == 0
    assert isinstance(events[-1], JobInterrupted)


def test_node_expansion(lab: Lab) -> None:
    data = {
        "1": {"class_type": "Const", "inputs": {"value": 10}},
        "2": {"class_type": "Repeat", "inputs": {"a": ["1", 0], "times": 3}},
        "3": {"class_type": "Sink", "inputs": {"a": ["2", 0]}},
    }
    ex = Executor(lab.registry)
    outcome, events = run(lab, data, ex)
    assert outcome.status == "success" and outcome.outputs["3"] == {"value": [13]}
    assert {"2:i0", "2:i1", "2:i2"} <= set(outcome.executed)
    assert "2:c" in outcome.cached  # Const(10) inside the expansion has node 1's signature
    expanded = [e for e in events if isinstance(e, NodeExecuting) and e.node.startswith("2:")]
    assert expanded and all(e.display_node == "2" for e in expanded)
    # The expanded nodes are signed and cached like any other: the same chain elsewhere is served from cache.
    lab.calls.clear()
    chain = {
        "a": {"class_type": "Const", "inputs": {"value": 10}},
        "b": {"class_type": "Inc", "inputs": {"a": ["a", 0], "k": 1}},
        "c": {"class_type": "Inc", "inputs": {"a": ["b", 0], "k": 1}},
        "d": {"class_type": "Sink", "inputs": {"a": ["c", 0]}},
    }
    outcome, _ = run(lab, chain, ex)
    assert lab.calls == Counter({"Sink": 1})


def test_expansion_cycle_fails_cleanly(lab: Lab) -> None:
    data = {
        "1": {"class_type": "Const", "inputs": {"value": 1}},
        "2": {"class_type": "Loopy", "inputs": {"a": ["1", 0]}},
        "3": {"class_type": "Sink", "inputs": {"a": ["2", 0]}},
    }
    outcome, _ = run(lab, data)
    assert outcome.status == "error" and outcome.error is not None
    assert outcome.error.exception_type == "DependencyCycleError" and outcome.error.node_id == "2"


def test_execution_blockers(lab: Lab) -> None:
    def gated(open_: bool, why: str) -> dict:
        return {
            "1": {"class_type": "Const", "inputs": {"value": 1}},
            "2": {"class_type": "Gate", "inputs": {"a": ["1", 0], "open": open_, "why": why}},
            "3": {"class_type": "Inc", "inputs": {"a": ["2", 0], "k": 1}},
            "4": {"class_type": "Sink", "inputs": {"a": ["3", 0]}},
            "5": {"class_type": "Sink", "inputs": {"a": ["1", 0]}},
        }

    outcome, events = run(lab, gated(False, ""))
    assert outcome.status == "success" and lab.calls["Inc"] == 0
    assert outcome.outputs == {"5": {"value": [1]}}
    assert not any(isinstance(e, NodeWarning) for e in events)
    outcome, events = run(lab, gated(False, "no input image"))
    warnings = [e for e in events if isinstance(e, NodeWarning)]
    assert len(warnings) == 1 and warnings[0].node == "3" and "no input image" in warnings[0].message
    outcome, _ = run(lab, gated(True, ""))
    assert outcome.outputs["4"] == {"value": [2]}


def test_list_fan_out(lab: Lab) -> None:
    data = {
        "1": {"class_type": "Range", "inputs": {"n": 4}},
        "2": {"class_type": "Inc", "inputs": {"a": ["1", 0], "k": 100}},
        "3": {"class_type": "Collect", "inputs": {"values": ["2", 0]}},
        "4": {"class_type": "Total", "inputs": {"values": ["2", 0]}},
        "5": {"class_type": "Sink", "inputs": {"a": ["4", 0]}},
        "6": {"class_type": "Sink", "inputs": {"a": ["2", 0]}},
    }
    outcome, _ = run(lab, data, extra={"extra_pnginfo": {"workflow": {"nodes": []}}})
    assert lab.calls["Inc"] == 4 and lab.calls["Total"] == 1
    assert outcome.outputs["3"] == {"values": [100, 101, 102, 103]}
    assert lab.seen["collect"] == ([100, 101, 102, 103], ["3"], [{"workflow": {"nodes": []}}])
    assert outcome.outputs["5"] == {"value": [406]}
    assert outcome.outputs["6"] == {"value": [100, 101, 102, 103]}  # one call per item, ui merged


def test_unequal_lists_repeat_their_last_item(lab: Lab) -> None:
    data = {
        "1": {"class_type": "Range", "inputs": {"n": 3}},
        "2": {"class_type": "Range", "inputs": {"n": 1}},
        "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
        "4": {"class_type": "Collect", "inputs": {"values": ["3", 0]}},
    }
    outcome, _ = run(lab, data)
    assert outcome.outputs["4"] == {"values": [0, 1, 2]}


def test_async_nodes_run_concurrently(lab: Lab) -> None:
    data = {
        "1": {"class_type": "Const", "inputs": {"value": 1}},
        "2": {"class_type": "AsyncWait", "inputs": {"a": ["1", 0], "peers": 3}},
        "3": {"class_type": "AsyncWait", "inputs": {"a": 2, "peers": 3}},
        "4": {"class_type": "AsyncWait", "inputs": {"a": 3, "peers": 3}},
        "5": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": ["3", 0]}},
        "6": {"class_type": "Add", "inputs": {"a": ["5", 0], "b": ["4", 0]}},
        "7": {"class_type": "Sink", "inputs": {"a": ["6", 0]}},
    }
    outcome, _ = run(lab, data)
    # Each AsyncWait only returns once all three have started, so this passes only if they overlap.
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["7"] == {"value": [6]} and lab.calls["AsyncWait"] == 3


def test_hidden_inputs_and_current_context(lab: Lab) -> None:
    seen: dict[str, Any] = {}

    @node(outputs=["INT"])
    def Peek(a: int = Socket("INT")) -> int:
        ctx = current_context()
        seen["ctx"] = (ctx.node_id, ctx.prompt_id, ctx.class_type) if ctx else None
        return a

    lab.registry.add_native(Peek)
    data = {
        "1": {"class_type": "Const", "inputs": {"value": 1}},
        "2": {"class_type": "Peek", "inputs": {"a": ["1", 0]}},
        "3": {"class_type": "Hidden", "inputs": {"a": ["2", 0]}},
        "4": {"class_type": "Collect", "inputs": {"values": ["3", 0]}},
    }
    outcome, _ = run(lab, data)
    assert outcome.status == "success"
    assert seen["ctx"] == ("2", "p1", "Peek") and current_context() is None
    assert lab.seen["hidden"] == ("3", ["1", "2", "3", "4"])


def test_protocol_and_native_nodes_side_by_side(lab: Lab) -> None:
    data = {
        "1": {"class_type": "Const", "inputs": {"value": 3}},
        "2": {"class_type": "PMul", "inputs": {"a": ["1", 0], "factor": 4}},
        "3": {"class_type": "Inc", "inputs": {"a": ["2", 0], "k": 1}},
        "4": {"class_type": "Sink", "inputs": {"a": ["3", 0]}},
    }
    outcome, _ = run(lab, data)
    assert outcome.outputs["4"] == {"value": [13]} and lab.calls["PMul"] == 1


def test_wrong_result_shape_fails_the_job_naming_the_node(lab: Lab) -> None:
    @node(outputs=[Out("INT", "x"), Out("INT", "y")])
    def Pair(a: int = Socket("INT")) -> tuple:
        return (a,)

    lab.registry.add_native(Pair)
    data = {
        "1": {"class_type": "Const", "inputs": {"value": 1}},
        "2": {"class_type": "Pair", "inputs": {"a": ["1", 0]}},
        "3": {"class_type": "Sink", "inputs": {"a": ["2", 1]}},
    }
    outcome, _ = run(lab, data)
    assert outcome.status == "error" and outcome.error.node_id == "2"
    assert outcome.error.exception_type == "ResultError" and "declares 2" in outcome.error.exception_message


def test_clearing_the_cache_mid_job_keeps_what_the_job_pins(lab: Lab) -> None:
    data = {
        "1": {"class_type": "Const", "inputs": {"value": 1}},
        "2": {"class_type": "Slow", "inputs": {"a": ["1", 0], "steps": 2}},
        "3": {"class_type": "Sink", "inputs": {"a": ["2", 0]}},
    }
    ex = Executor(lab.registry)
    run(
        lab,
        {
            "9": {"class_type": "Const", "inputs": {"value": 500}},
            "8": {"class_type": "Sink", "inputs": {"a": ["9", 0]}},
        },
        ex,
    )
    assert len(ex.cache) == 2
    cleared = threading.Event()

    def clear_from_another_thread(step: int) -> None:
        if step == 0:
            worker = threading.Thread(target=ex.cache.clear)
            worker.start()
            worker.join()
            cleared.set()

    lab.gate = clear_from_another_thread
    run(lab, data, ex)
    assert cleared.is_set()
    assert len(ex.cache) == 3  # the other job's two entries went; this job's Const (pinned) stayed, then 2 and 3
    lab.gate = None
    lab.calls.clear()
    outcome, _ = run(lab, data, ex)
    assert outcome.cached == ("3",) and sum(lab.calls.values()) == 0


# -- property tests: random DAGs against a naive recursive evaluator -------------------------------------------


def random_registry(calls: Counter) -> NodeRegistry:
    @node(outputs=["INT"])
    def Leaf(v: int = Int(0, min=-100, max=100)) -> int:
        calls["Leaf"] += 1
        return v

    @node(outputs=["INT"])
    def Mix(a: int = Socket("INT"), b: int = Socket("INT", optional=True), k: int = Int(0, min=-100, max=100)) -> int:
        calls["Mix"] += 1
        return a * 3 + (b or 0) + k

    @node(output_node=True)
    def Out(a: int = Socket("INT")) -> dict:
        calls["Out"] += 1
        return {"ui": {"v": [a]}}

    reg = NodeRegistry()
    reg.add_all([Leaf, Mix, Out])
    return reg


@st.composite
def dags(draw: Any) -> dict:
    n = draw(st.integers(2, 25))
    wf: dict = {}
    for i in range(n):
        if i == 0 or (draw(st.booleans()) and i < 3):
            wf[str(i)] = {"class_type": "Leaf", "inputs": {"v": draw(st.integers(-3, 3))}}
            continue
        inputs: dict = {"a": [str(draw(st.integers(0, i - 1))), 0], "k": draw(st.integers(-2, 2))}
        if draw(st.booleans()):
            inputs["b"] = [str(draw(st.integers(0, i - 1))), 0]
        wf[str(i)] = {"class_type": "Mix", "inputs": inputs}
    for j, target in enumerate(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3, unique=True))):
        wf[f"out{j}"] = {"class_type": "Out", "inputs": {"a": [str(target), 0]}}
    return wf


def naive(wf: dict, node_id: str) -> int:
    body = wf[node_id]
    inputs = {k: naive(wf, v[0]) if isinstance(v, list) else v for k, v in body["inputs"].items()}
    if body["class_type"] == "Leaf":
        return inputs["v"]
    if body["class_type"] == "Mix":
        return inputs["a"] * 3 + inputs.get("b", 0) + inputs["k"]
    return inputs["a"]


@settings(max_examples=60, deadline=None)
@given(dags())
def test_random_dags_match_a_naive_evaluator_and_run_each_node_once(data: dict) -> None:
    calls: Counter = Counter()
    reg = random_registry(calls)
    ex = Executor(reg)
    wf = parse_api(data)
    result = validate(wf, reg)
    assert result.ok
    first = ex.run(wf, outputs=result.outputs, prompt_id="a")
    second = ex.run(parse_api(data), outputs=result.outputs, prompt_id="b")
    expected = {o: {"v": [naive(data, o)]} for o in result.outputs}
    assert first.outputs == expected and second.outputs == expected
    assert second.executed == ()
    # Identical subgraphs share one execution, so calls never exceed the distinct nodes that were needed.
    assert len(first.executed) == sum(calls.values()) <= len(data)
    assert len(set(first.executed)) == len(first.executed)


def test_interrupting_an_async_node(lab: Lab) -> None:
    control = RunControl()

    @node(outputs=["INT"])
    async def Waiter(a: int = Socket("INT"), *, ctx: NodeContext) -> int:
        control.interrupt()
        await asyncio.sleep(0)
        ctx.check_interrupt()
        return a

    lab.registry.add_native(Waiter)
    data = {
        "1": {"class_type": "Const", "inputs": {"value": 1}},
        "2": {"class_type": "Waiter", "inputs": {"a": ["1", 0]}},
        "3": {"class_type": "Sink", "inputs": {"a": ["2", 0]}},
    }
    outcome, events = run(lab, data, control=control)
    assert outcome.status == "interrupted" and events[-1].node_id == "2" and lab.calls["Sink"] == 0
