"""Runs a validated workflow: only what the requested outputs need, served from the signature cache where possible,
emitting the events of engine/events.py in the protocol's order."""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.blocker import ExecutionBlocker
from engine.cache import OutputCache
from engine.context import Interrupted, NodeContext, RunControl, reset_current_context, set_current_context
from engine.dynprompt import DynamicPrompt
from engine.environment import NodeEnvironment
from engine.events import (
    EventSink,
    JobFailed,
    JobInterrupted,
    JobStarted,
    JobSucceeded,
    NodeExecuted,
    NodeExecuting,
    NodeFinished,
    NodesCached,
    NodeWarning,
    discard,
)
from engine.hidden import ABSENT, HiddenValues, fingerprint_args
from engine.plan import Plan, find_cycles
from engine.registry import NodeRegistry
from engine.results import ItemList, ResultError, normalise
from engine.signature import Signer
from engine.spec import NodeResult, NodeSpec
from engine.summary import summarise
from engine.workflow import Link, Workflow, WorkflowError, WorkflowNode, decode_input, parse_api

Status = Literal["success", "error", "interrupted"]
_PLAIN = frozenset({int, float, str, bool, bytes})


@dataclass(frozen=True, slots=True)
class RunOutcome:
    status: Status
    outputs: dict[str, dict[str, Any]]
    executed: tuple[str, ...]
    cached: tuple[str, ...]
    error: JobFailed | None = None


class Executor:
    """Runs workflows against one registry and one output cache (shared by every job, so work is reused)."""

    def __init__(
        self, registry: NodeRegistry, cache: OutputCache | None = None, env: NodeEnvironment | None = None
    ) -> None:
        self.registry = registry
        self.cache = cache if cache is not None else OutputCache()
        self.env = env if env is not None else registry.env

    def run(
        self,
        workflow: Workflow,
        *,
        outputs: Sequence[str],
        prompt_id: str,
        emit: EventSink = discard,
        control: RunControl | None = None,
        extra_data: Mapping[str, Any] | None = None,
    ) -> RunOutcome:
        """Synchronous; call it from a worker thread. Async nodes run on an event loop owned by this call."""
        job = _Job(self, workflow, prompt_id, emit, control or RunControl(), extra_data or {})
        return job.execute(list(outputs))


@dataclass(slots=True)
class _ClassInfo:
    """What the executor needs per node type, worked out once per run."""

    spec: NodeSpec
    lazy: frozenset[str]
    declared: frozenset[str]  # every declared input, hidden ones included
    raw_links: frozenset[str]  # inputs declared with {"rawLink": True}: they get `[node id, output]`
    hidden: tuple[tuple[str, str], ...]
    defaults: dict[str, Any]
    list_outputs: tuple[bool, ...]
    any_list_output: bool
    n_outputs: int


@dataclass(slots=True)
class _Pending:
    """A node whose async call is in flight."""

    node_id: str
    info: _ClassInfo
    kwargs: dict[str, Any]
    fanned: bool


class _Failed(Exception):
    def __init__(self, event: JobFailed) -> None:
        super().__init__(event.exception_message)
        self.event = event


class _Stopped(Exception):
    def __init__(self, node_id: str | None) -> None:
        super().__init__(node_id)
        self.node_id = node_id


@dataclass(slots=True)
class _Expansion:
    """A node waiting for its expansion: per call, its results (links into the grafted graphs where it expanded)."""

    calls: list[tuple[Any, ...]]
    ui: dict[str, Any] | None
    fanned: bool


@dataclass
class _Job:
    executor: Executor
    source: Workflow
    prompt_id: str
    emit: EventSink
    control: RunControl
    extra_data: Mapping[str, Any]
    nodes: dict[str, WorkflowNode] = field(init=False)
    workflow: Workflow = field(init=False)
    specs: dict[str, NodeSpec] = field(default_factory=dict)
    infos: dict[str, _ClassInfo] = field(default_factory=dict)
    results: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    uis: dict[str, dict[str, Any]] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    display: dict[str, str] = field(default_factory=dict)
    expansions: dict[str, _Expansion] = field(default_factory=dict)
    grafted: list[WorkflowNode] = field(default_factory=list)
    tasks: dict[asyncio.Task[Any], _Pending] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop | None = None

    def __post_init__(self) -> None:
        # Expansion adds nodes; the caller's workflow stays as it was.
        self.nodes = dict(self.source.nodes)
        self.workflow = Workflow(self.nodes)
        self.dynprompt = DynamicPrompt(self.source, self.nodes)
        self.hidden = HiddenValues(self.source, self.extra_data, self.dynprompt)
        self.cache = self.executor.cache
        self.signer = Signer(self.workflow, self.specs, self._fingerprint_args)
        self.plan = Plan(self.workflow, self._is_lazy, self._resolve)

    # -- the run -------------------------------------------------------------------------------------------------

    def execute(self, outputs: list[str]) -> RunOutcome:
        emit, pid = self.emit, self.prompt_id
        emit(JobStarted(pid))
        try:
            self._load_specs(self.nodes.values())
            emit(NodesCached(pid, self._cached_nodes()))
            self.plan.require(outputs)
            self._drive()
            if self.control.interrupted:  # asked while the last node ran without looking: still an interrupt
                raise _Stopped(None)
            stuck = self.plan.unfinished(outputs)
            if stuck:
                raise self._failure(stuck[0], RuntimeError(f"nodes {stuck} could never become ready (a cycle?)"))
        except _Failed as failed:
            emit(failed.event)
            return self._outcome("error", failed.event)
        except _Stopped as stopped:
            at = stopped.node_id
            node_type = self.nodes[at].class_type if at is not None and at in self.nodes else None
            emit(JobInterrupted(pid, at, node_type, tuple(self.executed)))
            return self._outcome("interrupted")
        finally:
            self._close_loop()
            self.cache.unpin_all()
        emit(JobSucceeded(pid, dict(self.uis)))
        return self._outcome("success")

    def _cached_nodes(self) -> tuple[str, ...]:
        """Every node of the prompt whose output the cache holds now, pinned there for the run: `execution_cached`
        lists them all before anything runs, whether they are needed up front or only later (a lazy input, a
        node an expansion links to)."""
        hits = []
        for node_id in self.nodes:
            try:
                sig = self.signer(node_id)
            except ValueError:  # a cycle among nodes no valid output needs
                continue
            if sig in self.cache:
                hits.append(node_id)
        self.cache.pin(self.signer.sigs.values())
        return tuple(hits)

    def _outcome(self, status: Status, error: JobFailed | None = None) -> RunOutcome:
        return RunOutcome(status, dict(self.uis), tuple(self.executed), tuple(self.cached), error)

    def _drive(self) -> None:
        ready, control, step = self.plan.ready, self.control, self._step
        while True:
            while ready:
                if control.interrupted:
                    raise _Stopped(None)
                step(ready.popleft())
            if not self.tasks:
                return
            self._await_tasks()

    # -- plan callbacks ------------------------------------------------------------------------------------------

    def _is_lazy(self, node_id: str, name: str) -> bool:
        return name in self._info(self.nodes[node_id].class_type).lazy

    def _resolve(self, node_id: str) -> bool:
        """Serve a node from the cache when its signature is there."""
        try:
            sig = self.signer(node_id)
        except ValueError as exc:
            raise self._failure(node_id, exc) from exc
        entry = self.cache.get(sig)
        if entry is None:
            return False
        self.results[node_id] = entry.outputs
        self.cached.append(node_id)
        if entry.ui is not None:
            self.uis[node_id] = entry.ui
            self.emit(self._executed(node_id, entry.ui, cached=True))
        return True

    def _executed(self, node_id: str, ui: dict[str, Any], cached: bool = False) -> NodeExecuted:
        dyn = self.dynprompt
        display = self.display.get(node_id, node_id)
        parent, real = dyn.get_parent_node_id(node_id), dyn.get_real_node_id(node_id)
        return NodeExecuted(self.prompt_id, node_id, display, ui, cached, parent, real)

    def _fingerprint_args(self, node_id: str, spec: NodeSpec, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return fingerprint_args(node_id, spec, inputs, self.hidden)

    def _add_hidden(self, node_id: str, info: _ClassInfo, given: Mapping[str, Any], kwargs: dict[str, Any]) -> None:
        for name, kind in info.hidden:
            value = self.hidden.value(node_id, name, kind, given)
            if value is not ABSENT:
                kwargs[name] = value
            else:
                kwargs.pop(name, None)

    # -- one node ------------------------------------------------------------------------------------------------

    def _step(self, node_id: str) -> None:
        expansion = self.expansions.pop(node_id, None)
        if expansion is not None:
            self._finish_expansion(node_id, expansion)
            return
        node = self.nodes[node_id]
        info = self._info(node.class_type)
        spec = info.spec
        results = self.results
        kwargs: dict[str, Any] = {}
        unevaluated: dict[str, str] | None = None
        blocker: ExecutionBlocker | None = None
        fanned = False
        for name, value in node.inputs.items():
            if type(value) is Link:
                if name in info.raw_links:  # the node wants the link itself; its source has still run first
                    kwargs[name] = [value.node, value.output]
                    continue
                out = results.get(value.node)
                if out is None:
                    if unevaluated is None:
                        unevaluated = {}
                    unevaluated[name] = value.node
                    kwargs[name] = None
                    continue
                value = out[value.output]
                kind = type(value)
                if kind is ItemList:
                    fanned = True
                elif kind is ExecutionBlocker and blocker is None:
                    blocker = value
            elif name not in info.declared:  # an undeclared literal is dropped; an undeclared link is passed
                continue
            kwargs[name] = value
        if info.defaults:
            for name, default in info.defaults.items():
                kwargs.setdefault(name, default)
        self._add_hidden(node_id, info, node.inputs, kwargs)
        if spec.input_is_list:
            fanned = False
            if blocker is None:
                blocker = next(
                    (x for v in kwargs.values() if type(v) is ItemList for x in v if type(x) is ExecutionBlocker), None
                )
        if blocker is not None:
            self._block(node_id, info, blocker)
            return
        if unevaluated and self._wait_for_lazy(node_id, spec, kwargs, unevaluated):
            return
        if spec.input_is_list:
            kwargs = {k: list(v) if type(v) is ItemList else [v] for k, v in kwargs.items()}
        self._call(node_id, node, info, kwargs, fanned)

    def _context(self, node_id: str) -> NodeContext:
        return NodeContext(
            self.prompt_id,
            node_id,
            self.display.get(node_id, node_id),
            self.nodes[node_id].class_type,
            self.emit,
            self.control,
            self.executor.env,
            self.hidden.prompt,
            self.extra_data.get("extra_pnginfo"),
        )

    def _call(self, node_id: str, node: WorkflowNode, info: _ClassInfo, kwargs: dict[str, Any], fanned: bool) -> None:
        spec = info.spec
        ctx = self._context(node_id)
        self.emit(NodeExecuting(self.prompt_id, node_id, ctx.display_node, node.class_type))
        token = set_current_context(ctx)
        try:
            if fanned:
                raw: Any = [self._invoke_item(spec, item, ctx) for item in _items(kwargs)]
                if spec.is_async:
                    raw = _gather(raw)
            else:
                if spec.wants_context:
                    kwargs["__context__"] = ctx
                raw = spec.invoke(kwargs)  # both APIs' invoke pop "__context__" again
            if inspect.isawaitable(raw):
                if self.loop is None:
                    self.loop = asyncio.new_event_loop()
                self.tasks[self.loop.create_task(_awaited(raw))] = _Pending(node_id, info, kwargs, fanned)
                return
        except Interrupted:
            raise _Stopped(node_id) from None
        except BaseException as exc:  # SystemExit, KeyboardInterrupt...: a node's error like any other
            raise self._failure(node_id, exc, kwargs) from exc
        finally:
            reset_current_context(token)
        self._complete(node_id, info, raw, fanned, kwargs)

    def _invoke_item(self, spec: NodeSpec, item: dict[str, Any], ctx: NodeContext) -> Any:
        for value in item.values():
            if type(value) is ExecutionBlocker:
                return value
        if spec.wants_context:
            item["__context__"] = ctx
        return spec.invoke(item)

    def _complete(self, node_id: str, info: _ClassInfo, raw: Any, fanned: bool, kwargs: dict[str, Any]) -> None:
        spec = info.spec
        if not fanned and not info.any_list_output:  # the common shapes, without the general normalising
            kind = type(raw)
            if kind is tuple and len(raw) == info.n_outputs:
                self._store(node_id, raw, None)
                return
            if kind in _PLAIN and info.n_outputs == 1:
                self._store(node_id, (raw,), None)
                return
        try:
            if fanned:
                merged = self._merge(node_id, spec, info, raw)
                if merged is None:
                    return
                outputs, ui = merged
            else:
                result = normalise(spec, raw, node_id)
                if result.expand is not None:
                    self._expand(node_id, [self._graft(node_id, spec, result, f"{node_id}:")], result.ui, False)
                    return
                outputs, ui = result.outputs, result.ui
                if info.any_list_output:
                    outputs = tuple(
                        _as_items(v) if is_list else v for v, is_list in zip(outputs, info.list_outputs, strict=True)
                    )
        except _Failed:
            raise
        except BaseException as exc:
            raise self._failure(node_id, exc, kwargs) from exc
        self._store(node_id, outputs, ui)

    def _merge(
        self, node_id: str, spec: NodeSpec, info: _ClassInfo, raws: list[Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any] | None] | None:
        """One call per list item: each output collects the items (list outputs are concatenated). A call that
        expands has its graph spliced under its own prefix ("12:0.5" for call 0); then the node waits for every
        expansion and this returns None."""
        n = len(spec.outputs)
        calls: list[tuple[Any, ...]] = []
        expanded = False
        ui: dict[str, Any] | None = None
        for index, raw in enumerate(raws):
            if type(raw) is ExecutionBlocker:
                calls.append((raw,) * n)
                continue
            result = normalise(spec, raw, node_id)
            if result.expand is not None:
                calls.append(self._graft(node_id, spec, result, f"{node_id}:{index}."))
                expanded = True
            else:
                calls.append(result.outputs)
            if result.ui:
                ui = ui or {}
                for key, value in result.ui.items():
                    ui.setdefault(key, []).extend(value if isinstance(value, list | tuple) else [value])
        if expanded:
            self._expand(node_id, calls, ui, True)
            return None
        return _columns(info, calls), ui

    def _store(self, node_id: str, outputs: tuple[Any, ...], ui: dict[str, Any] | None) -> None:
        self.results[node_id] = outputs
        self.executed.append(node_id)
        if ui is not None:
            self.uis[node_id] = ui
            self.emit(self._executed(node_id, ui))
        self.emit(NodeFinished(self.prompt_id, node_id))
        self.cache.put(self.signer.sigs[node_id], outputs, ui)
        self.plan.finish(node_id)

    def _block(self, node_id: str, info: _ClassInfo, blocker: ExecutionBlocker) -> None:
        """A blocked node does not run; its outputs block what depends on them (silently after the first)."""
        if blocker.message is not None:
            self.emit(NodeWarning(self.prompt_id, node_id, f"Execution blocked: {blocker.message}"))
            blocker = ExecutionBlocker(None)
        self.results[node_id] = (blocker,) * len(info.spec.outputs)
        self.plan.finish(node_id)

    def _wait_for_lazy(self, node_id: str, spec: NodeSpec, kwargs: dict[str, Any], unevaluated: dict[str, str]) -> bool:
        """Ask the node which lazy inputs it needs; True when it must wait for some of them first."""
        if spec.check_lazy is None:
            wanted: set[str] = set(unevaluated)
        else:
            wanted = set()
            token = set_current_context(self._context(node_id))  # the same node instance answers, as packs expect
            try:
                items = [kwargs] if spec.input_is_list else list(_items(kwargs)) or [kwargs]
                for item in items:
                    asked = spec.check_lazy(dict(item))
                    if inspect.isawaitable(asked):
                        if self.loop is None:
                            self.loop = asyncio.new_event_loop()
                        asked = self.loop.run_until_complete(_awaited(asked))
                    wanted.update(asked or ())
            except Interrupted:
                raise _Stopped(node_id) from None
            except BaseException as exc:
                raise self._failure(node_id, exc, kwargs) from exc
            finally:
                reset_current_context(token)
        sources = [unevaluated[name] for name in wanted if name in unevaluated]
        return bool(sources) and self.plan.wait_on(node_id, sources)

    # -- node expansion ------------------------------------------------------------------------------------------

    def _graft(self, node_id: str, spec: NodeSpec, result: NodeResult, prefix: str) -> tuple[Any, ...]:
        """Add one expansion graph under composite ids (`prefix` + its id: "12:5") and return the node's results
        with links into the graph. A node's `override_display_id` is what events show for it."""
        try:
            graph = parse_api(result.expand)
        except WorkflowError as exc:
            raise self._failure(node_id, exc) from exc
        raw_graph = result.expand or {}
        ids = {sub_id: prefix + sub_id for sub_id in graph.nodes}
        added: list[WorkflowNode] = []
        for sub_id, sub in graph.nodes.items():
            new_id = ids[sub_id]
            if new_id in self.nodes:
                raise self._failure(node_id, RuntimeError(f"expansion node id {new_id} is already in use"))
            inputs = {name: self._relink(node_id, v, ids) for name, v in sub.inputs.items()}
            added.append(WorkflowNode(new_id, sub.class_type, inputs, sub.title))
        self._load_specs(added)
        outputs = tuple(self._relink(node_id, decode_input(v), ids) for v in result.outputs)
        if len(outputs) != len(spec.outputs):
            raise self._failure(
                node_id,
                ResultError(
                    f"node {node_id} ({spec.class_type}) expanded with {len(outputs)} results; it declares "
                    f"{len(spec.outputs)}"
                ),
            )
        for sub_id, sub in zip(graph.nodes, added, strict=True):
            body = raw_graph.get(sub_id)
            override = body.get("override_display_id") if isinstance(body, Mapping) else None
            shown = str(override) if override is not None else node_id
            self.nodes[sub.id] = sub
            self.display[sub.id] = self.display.get(shown, shown)
            self.dynprompt.link(sub.id, node_id, shown)
        self._check_expansion_cycles(node_id, added)
        self.grafted.extend(added)
        return outputs

    def _expand(self, node_id: str, calls: list[tuple[Any, ...]], ui: dict[str, Any] | None, fanned: bool) -> None:
        """Make the node wait for the results of the graphs just grafted (and run their output nodes)."""
        added, self.grafted = self.grafted, []
        self.expansions[node_id] = _Expansion(calls, ui, fanned)
        links = [v.node for call in calls for v in call if type(v) is Link]
        waits = self.plan.wait_on(node_id, links)
        self.plan.require([sub.id for sub in added if self.specs[sub.class_type].output_node])
        self.cache.pin(self.signer.sigs[sub.id] for sub in added if sub.id in self.signer.sigs)
        if not waits:
            self._finish_expansion(node_id, self.expansions.pop(node_id))

    def _relink(self, parent: str, value: Any, ids: Mapping[str, str]) -> Any:
        if type(value) is not Link:
            return value
        if value.node in ids:
            return Link(ids[value.node], value.output)
        if value.node in self.nodes:
            return value
        raise self._failure(parent, WorkflowError(f"expansion of node {parent} links to unknown node {value.node}"))

    def _check_expansion_cycles(self, parent: str, added: list[WorkflowNode]) -> None:
        new = {sub.id: sub for sub in added}
        downstream = self.plan.downstream(parent) | {parent}
        for sub in added:
            for value in sub.inputs.values():
                if type(value) is Link and value.node in downstream:
                    raise self._failure(
                        parent,
                        RuntimeError(f"expansion node {sub.id} depends on node {value.node}, which waits for it"),
                        exc_type="DependencyCycleError",
                    )

        def edges(node_id: str) -> list[str]:
            return [v.node for v in new[node_id].inputs.values() if type(v) is Link and v.node in new]

        cycles = find_cycles(new, edges)
        if cycles:
            path = " -> ".join([*cycles[0], cycles[0][0]])
            raise self._failure(
                parent, RuntimeError(f"expansion has a dependency cycle: {path}"), exc_type="DependencyCycleError"
            )

    def _finish_expansion(self, node_id: str, expansion: _Expansion) -> None:
        results = self.results
        calls = [tuple(results[v.node][v.output] if type(v) is Link else v for v in call) for call in expansion.calls]
        if expansion.fanned:
            self._store(node_id, _columns(self._info(self.nodes[node_id].class_type), calls), expansion.ui)
        else:
            self._store(node_id, calls[0], expansion.ui)

    # -- async ---------------------------------------------------------------------------------------------------

    def _await_tasks(self) -> None:
        assert self.loop is not None
        done, _ = self.loop.run_until_complete(asyncio.wait(list(self.tasks), return_when=asyncio.FIRST_COMPLETED))
        for task in done:
            pending = self.tasks.pop(task)
            exc = task.exception()
            if isinstance(exc, Interrupted):
                raise _Stopped(pending.node_id)
            if exc is not None:
                raise self._failure(pending.node_id, exc, pending.kwargs)
            self._complete(pending.node_id, pending.info, task.result(), pending.fanned, pending.kwargs)

    def _close_loop(self) -> None:
        loop = self.loop
        if loop is None:
            return
        if self.tasks:
            for task in self.tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*self.tasks, return_exceptions=True))
            self.tasks.clear()
        loop.close()
        self.loop = None

    # -- helpers -------------------------------------------------------------------------------------------------

    def _load_specs(self, nodes: Any) -> None:
        registry = self.executor.registry
        specs = self.specs
        for node in nodes:
            if node.class_type not in specs:
                spec = registry.get(node.class_type)
                if spec is None:
                    error = LookupError(f"node {node.id}: unknown node type {node.class_type!r}")
                    raise self._failure(node.id, error, exc_type="UnknownNodeType", node_type=node.class_type)
                specs[node.class_type] = spec

    def _info(self, class_type: str) -> _ClassInfo:
        info = self.infos.get(class_type)
        if info is None:
            spec = self.specs[class_type]
            info = self.infos[class_type] = _ClassInfo(
                spec=spec,
                lazy=frozenset(i.name for i in spec.inputs if i.lazy),
                declared=frozenset(i.name for i in spec.inputs),
                raw_links=frozenset(i.name for i in spec.inputs if i.options.get("rawLink")),
                hidden=tuple((i.name, i.hidden or i.type) for i in spec.inputs if i.kind == "hidden"),
                defaults={i.name: i.default for i in spec.inputs if i.kind == "required" and i.has_default},
                list_outputs=tuple(o.is_list for o in spec.outputs),
                any_list_output=any(o.is_list for o in spec.outputs),
                n_outputs=len(spec.outputs),
            )
        return info

    def _failure(
        self,
        node_id: str,
        exc: BaseException,
        kwargs: Mapping[str, Any] | None = None,
        exc_type: str | None = None,
        node_type: str | None = None,
    ) -> _Failed:
        if isinstance(exc, _Escaped) and exc.__cause__ is not None:
            exc = exc.__cause__
        node = self.nodes.get(node_id)
        inputs = {k: summarise(v) for k, v in (kwargs or {}).items() if k != "__context__"}
        lines = [line for chunk in traceback.format_exception(exc) for line in chunk.splitlines()]
        event = JobFailed(
            prompt_id=self.prompt_id,
            node_id=node_id,
            node_type=node_type or (node.class_type if node else ""),
            executed=tuple(self.executed),
            exception_message=str(exc),
            exception_type=exc_type or type(exc).__name__,
            traceback=tuple(lines),
            current_inputs=inputs,
            current_outputs=tuple(self.results),
        )
        return _Failed(event)


def _items(kwargs: dict[str, Any]) -> Any:
    """The per-item keyword sets of a fanned-out call; shorter lists repeat their last item, empty ones give none."""
    lengths = [len(v) for v in kwargs.values() if type(v) is ItemList]
    count = 0 if 0 in lengths else max(lengths, default=1)
    for i in range(count):
        yield {k: (v[min(i, len(v) - 1)] if type(v) is ItemList else v) for k, v in kwargs.items()}


def _columns(info: _ClassInfo, calls: list[tuple[Any, ...]]) -> tuple[ItemList, ...]:
    """The outputs of a node that ran once per item: each output lists the calls' values in call order (a list
    output's values are concatenated)."""
    columns: list[list[Any]] = [[] for _ in range(info.n_outputs)]
    for call in calls:
        for column, value, is_list in zip(columns, call, info.list_outputs, strict=True):
            if is_list:
                column.extend(_as_items(value))
            else:
                column.append(value)
    return tuple(ItemList(c) for c in columns)


def _as_items(value: Any) -> ItemList:
    if type(value) is ItemList:
        return value
    return ItemList(value) if isinstance(value, list | tuple) else ItemList((value,))


class _Escaped(Exception):
    """Carries a node coroutine's SystemExit or KeyboardInterrupt (its __cause__), which asyncio would otherwise
    re-raise through the event loop instead of keeping in the task."""


async def _awaited(awaitable: Any) -> Any:
    try:
        return await awaitable
    except (Exception, asyncio.CancelledError):
        raise
    except BaseException as exc:
        raise _Escaped(str(exc)) from exc


async def _gather(raws: list[Any]) -> list[Any]:
    """Await the awaitable items of a fanned-out async call together; blocked items pass through."""
    waiting = [r for r in raws if inspect.isawaitable(r)]
    done = iter(await asyncio.gather(*waiting))
    return [next(done) if inspect.isawaitable(r) else r for r in raws]
