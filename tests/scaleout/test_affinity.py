"""Placement by cache affinity: the job's signatures as the workers' executors compute them, weighted by what they
hold (models above all), chosen only among idle workers, longest idle first on ties."""

from __future__ import annotations

from engine.cache import OutputCache
from engine.executor import Executor
from engine.native import Out, String, node
from engine.registry import NodeRegistry
from engine.workflow import parse_api
from scaleout.affinity import HEAVY_TYPES, job_needs, pick


@node(category="test", outputs=[Out("MODEL")])
def AffLoader(name: str = String("m")) -> tuple[str]:
    return (name,)


@node(category="test", outputs=[Out("STRING")], output_node=True)
def AffUse(model: str = String(""), text: str = String("t")) -> dict:
    return {"ui": {"text": [f"{model}:{text}"]}, "result": (f"{model}:{text}",)}


def registry() -> NodeRegistry:
    reg = NodeRegistry()
    reg.add_all([AffLoader, AffUse])
    return reg


def prompt(name: str, text: str) -> dict:
    return {
        "1": {"class_type": "AffLoader", "inputs": {"name": name}},
        "2": {"class_type": "AffUse", "inputs": {"model": ["1", 0], "text": text}},
    }


def test_needs_match_what_an_executor_caches_and_weigh_models_most() -> None:
    reg = registry()
    cache = OutputCache()
    Executor(reg, cache).run(parse_api(prompt("m1", "a")), outputs=["2"], prompt_id="p")
    needs = job_needs(parse_api(prompt("m1", "b")), reg)
    held = set(cache.keys())
    shared = [n for sig, n in needs.items() if sig in held]
    assert [n.label for n in shared] == ["AffLoader(name=m1)"], "only the loader is shared with the first job"
    assert shared[0].weight == HEAVY_TYPES["MODEL"]
    assert min(n.weight for n in needs.values()) == 1


def test_pick_prefers_the_warm_worker_then_the_longest_idle() -> None:
    reg = registry()
    needs = job_needs(parse_api(prompt("m1", "b")), reg)
    loader = next(sig for sig, n in needs.items() if n.weight > 1)
    other = next(sig for sig, n in needs.items() if n.weight == 1)
    idle = [(3, {other}), (5, {loader}), (7, set())]
    assert pick(needs, idle) == 5
    assert pick(needs, idle, affinity=False) == 3, "without affinity: the longest idle"
    assert pick(needs, [(7, set()), (3, set())]) == 7, "ties go to the longest idle"
