"""Engine overhead on trivial nodes: validation, uncached execution per node, fully cached re-runs, re-runs after one
widget changed, and memory per cached node. Chains and random DAGs of 100, 1,000 and 10,000 nodes.

    .venv/bin/python bench/engine_overhead.py [--sizes 100,1000,10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.cache import OutputCache
from engine.executor import Executor
from engine.native import Int, Socket, node
from engine.registry import NodeRegistry
from engine.validate import validate
from engine.workflow import Workflow, parse_api


@node(outputs=["INT"])
def Source(k: int = Int(0)) -> int:
    return k


@node(outputs=["INT"])
def Step(a: int = Socket("INT"), b: int = Socket("INT", optional=True), k: int = Int(0)) -> int:
    return a + k if b is None else a + b + k


@node(output_node=True)
def Sink(a: int = Socket("INT")) -> dict:
    return {"ui": {"value": [a]}}


def registry() -> NodeRegistry:
    reg = NodeRegistry()
    reg.add_all([Source, Step, Sink])
    return reg


def chain(n: int) -> dict:
    wf: dict = {"0": {"class_type": "Source", "inputs": {"k": 1}}}
    for i in range(1, n - 1):
        wf[str(i)] = {"class_type": "Step", "inputs": {"a": [str(i - 1), 0], "k": i}}
    wf[str(n - 1)] = {"class_type": "Sink", "inputs": {"a": [str(n - 2), 0]}}
    return wf


def random_dag(n: int, seed: int = 1) -> dict:
    rng = random.Random(seed)
    sources = max(1, n // 20)
    wf: dict = {str(i): {"class_type": "Source", "inputs": {"k": i}} for i in range(sources)}
    for i in range(sources, n - 1):
        inputs: dict = {"a": [str(i - 1), 0], "k": i % 7}
        if rng.random() < 0.7:
            inputs["b"] = [str(rng.randrange(0, i)), 0]
        wf[str(i)] = {"class_type": "Step", "inputs": inputs}
    wf[str(n - 1)] = {"class_type": "Sink", "inputs": {"a": [str(n - 2), 0]}}
    return wf


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def call_cost(wf: Workflow, reg: NodeRegistry) -> float:
    """Seconds spent inside the node functions themselves for one full run (subtracted from the overhead)."""
    specs = {n.class_type: reg.get(n.class_type) for n in wf.nodes.values()}
    start = time.perf_counter()
    for n in wf.nodes.values():
        kwargs = {k: (1 if isinstance(v, tuple) else v) for k, v in n.inputs.items()}
        specs[n.class_type].invoke(kwargs)  # type: ignore[union-attr]
    return time.perf_counter() - start


def measure(name: str, data: dict, repeat: int) -> dict[str, float]:
    reg = registry()
    wf = parse_api(data)
    n = len(wf.nodes)
    v_time = best(lambda: validate(wf, reg), repeat)
    outputs = validate(wf, reg).outputs

    def fresh_run() -> None:
        Executor(reg, OutputCache()).run(wf, outputs=outputs, prompt_id="b")

    fn_time = min(call_cost(wf, reg) for _ in range(repeat))
    uncached = best(fresh_run, repeat)
    ex = Executor(reg, OutputCache())
    assert ex.run(wf, outputs=outputs, prompt_id="b").status == "success"
    cached = best(lambda: ex.run(wf, outputs=outputs, prompt_id="b"), repeat)

    leaf = str(n - 2)
    counter = iter(range(10**9))

    def change_leaf() -> None:
        wf.nodes[leaf].inputs["k"] = 1000 + next(counter)
        ex.run(wf, outputs=outputs, prompt_id="b")

    changed = best(change_leaf, repeat)

    gc.collect()
    tracemalloc.start()
    cache = OutputCache()
    before = tracemalloc.get_traced_memory()[0]
    Executor(reg, cache).run(wf, outputs=outputs, prompt_id="b")
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {
        "name": name,
        "nodes": n,
        "validate_ms": v_time * 1e3,
        "overhead_us": (uncached - fn_time) / n * 1e6,
        "cached_ms": cached * 1e3,
        "changed_ms": changed * 1e3,
        "bytes_per_node": (after - before) / len(cache),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        rows.append(measure("chain", chain(size), args.repeat))
        rows.append(measure("random DAG", random_dag(size), args.repeat))
    header = (
        f"{'shape':<11}{'nodes':>7}{'validate ms':>13}{'overhead us/node':>18}{'cached re-run ms':>18}"
        f"{'one change ms':>15}{'bytes/cached node':>19}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['name']:<11}{r['nodes']:>7}{r['validate_ms']:>13.2f}{r['overhead_us']:>18.1f}{r['cached_ms']:>18.2f}"
            f"{r['changed_ms']:>15.2f}{r['bytes_per_node']:>19.0f}"
        )
    print("targets: overhead < 30 us/node, cached re-run of 1,000 nodes < 20 ms, < 2,000 bytes per cached node")


if __name__ == "__main__":
    main()
