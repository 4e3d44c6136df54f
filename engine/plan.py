"""What must run for the requested outputs: a DAG of waiting nodes that grows as lazy inputs are asked for and
nodes expand, so ready nodes can be taken in any order (and later in parallel)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping

from engine.workflow import Link, Workflow

# (node id, input name) -> True when that input is lazy and so is not waited for up front.
LazyTest = Callable[[str, str], bool]


def find_cycles(nodes: Iterable[str], edges: Callable[[str], Iterable[str]]) -> list[list[str]]:
    """Cycles among `nodes` following `edges` (node -> the nodes it depends on), each as the list of its nodes in
    dependency order; iterative, so deep chains are fine. Every node on some cycle appears in at least one."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    cycles: list[list[str]] = []
    for root in nodes:
        if root in state:
            continue
        path: list[str] = [root]
        stack = [iter(edges(root))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            seen = state.get(nxt)
            if seen is None:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(edges(nxt)))
            elif seen == 1:
                cycles.append(path[path.index(nxt) :])
    return cycles


def link_sources(workflow: Workflow) -> Callable[[str], list[str]]:
    """The edges function over every link of a workflow (lazy ones included), for `find_cycles`."""
    nodes = workflow.nodes

    def edges(node_id: str) -> list[str]:
        node = nodes.get(node_id)
        if node is None:
            return []
        return [v.node for v in node.inputs.values() if type(v) is Link and v.node in nodes]

    return edges


class Plan:
    """The nodes still to run. A node waits for the unfinished nodes its non-lazy inputs link to; when the last one
    finishes it becomes ready. `require` adds nodes (and what they need); `wait_on` makes a running node wait again
    (lazy inputs it asked for, the result nodes of its expansion)."""

    __slots__ = ("finished", "is_lazy", "ready", "resolve", "waiters", "waiting", "workflow")

    def __init__(self, workflow: Workflow, is_lazy: LazyTest, resolve: Callable[[str], bool]) -> None:
        self.workflow = workflow
        self.is_lazy = is_lazy
        # Called once for each node the plan takes in: True when its outputs are already known (a cache hit).
        self.resolve = resolve
        self.waiting: dict[str, set[str]] = {}
        self.waiters: dict[str, list[str]] = {}
        self.finished: set[str] = set()
        self.ready: deque[str] = deque()

    def require(self, node_ids: Iterable[str]) -> None:
        nodes = self.workflow.nodes
        waiting, waiters, finished, is_lazy = self.waiting, self.waiters, self.finished, self.is_lazy
        stack = [n for n in reversed(list(node_ids)) if n not in waiting and n not in finished]
        while stack:
            node_id = stack.pop()
            if node_id in waiting or node_id in finished:
                continue
            if self.resolve(node_id):
                self.finish(node_id)
                continue
            ups: dict[str, None] = {}
            for name, value in nodes[node_id].inputs.items():
                if type(value) is Link and value.node not in finished and not is_lazy(node_id, name):
                    ups[value.node] = None
            waiting[node_id] = set(ups)
            if not ups:
                self.ready.append(node_id)
                continue
            for up in reversed(ups):  # reversed: the first input's branch is taken first
                waiters.setdefault(up, []).append(node_id)
                if up not in waiting:
                    stack.append(up)

    def wait_on(self, node_id: str, ups: Iterable[str]) -> bool:
        """Make a running node wait for `ups`; False when they are all finished already (run it on)."""
        pending = {u for u in ups if u not in self.finished}
        if not pending:
            return False
        self.waiting[node_id] = set(pending)
        for up in pending:
            self.waiters.setdefault(up, []).append(node_id)
        self.require(pending)
        return True

    def finish(self, node_id: str) -> None:
        self.finished.add(node_id)
        self.waiting.pop(node_id, None)
        for waiter in self.waiters.pop(node_id, ()):
            ups = self.waiting.get(waiter)
            if ups is not None and node_id in ups:
                ups.discard(node_id)
                if not ups:
                    self.ready.append(waiter)

    def downstream(self, node_id: str) -> set[str]:
        """Every unfinished node that waits, directly or not, on `node_id`."""
        seen: set[str] = set()
        stack = [node_id]
        while stack:
            for w in self.waiters.get(stack.pop(), ()):
                if w not in seen:
                    seen.add(w)
                    stack.append(w)
        return seen

    def unfinished(self, targets: Mapping[str, object] | Iterable[str]) -> list[str]:
        return [t for t in targets if t not in self.finished]
