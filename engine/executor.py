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
from engine.plan import Plan, find_cycles
from engine.registry import NodeRegistry
from engine.results import ItemList, ResultError, normalise
from engine.signature import Signer
from engine.spec import HIDDEN_DYNPROMPT, HIDDEN_EXTRA_PNGINFO, HIDDEN_PROMPT, HIDDEN_UNIQUE_ID, NodeResult, NodeSpec
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
    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None


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
    tasks: dict[asyncio.Task[Any], _Pending] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop | None = None
    started: bool = False
    prompt_api: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # Expansion adds nodes; the caller's workflow stays as it was.
        self.nodes = dict(self.source.nodes)
        self.workflow = Workflow(self.nodes)
        self.cache = self.executor.cache
        self.signer = Signer(self.workflow, self.specs)
        self.plan = Plan(self.workflow, self._is_lazy, self._resolve)

    # -- the run -------------------------------------------------------------------------------------------------

    def execute(self, outputs: list[str]) -> RunOutcome:
        emit, pid = self.emit, self.prompt_id
        emit(JobStarted(pid))
        try:
            self._load_specs(self.nodes.values())
            self.plan.require(outputs)
            self.cache.pin(self.signer.sigs.values())
            self.started = True
            emit(NodesCached(pid, tuple(self.cached)))
            for node_id in self.cached:
                ui = self.uis.get(node_id)
                if ui is not None:
                    emit(NodeExecuted(pid, node_id, self.display.get(node_id, node_id), ui, cached=True))
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
            node_id = stopped.node_id
            node_type = self.nodes[node_id].class_type if node_id in self.nodes else None
            emit(JobInterrupted(pid, node_id, node_type, tuple(self.executed)))
            return self._outcome("interrupted")
        finally:
            self._close_loop()
            self.cache.unpin_all()
        emit(JobSucceeded(pid, dict(self.uis)))
        return self._outcome("success")

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
            if self.started:
                display = self.display.get(node_id, node_id)
                self.emit(NodeExecuted(self.prompt_id, node_id, display, entry.ui, cached=True))
        return True

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
            kwargs[name] = value
        if info.defaults:
            for name, default in info.defaults.items():
                kwargs.setdefault(name, default)
        for name, kind in info.hidden:
            kwargs[name] = self._hidden(node_id, kind)
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

    def _call(self, node_id: str, node: WorkflowNode, info: _ClassInfo, kwargs: dict[str, Any], fanned: bool) -> None:
        spec = info.spec
        display = self.display.get(node_id, node_id)
        if self.prompt_api is None:
            self.prompt_api = self.source.to_api()
        ctx = NodeContext(
            self.prompt_id,
            node_id,
            display,
            node.class_type,
            self.emit,
            self.control,
            self.executor.env,
            self.prompt_api,
            self.extra_data.get("extra_pnginfo"),
        )
        self.emit(NodeExecuting(self.prompt_id, node_id, display, node.class_type))
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
                outputs, ui = self._merge(node_id, spec, info, raw)
            else:
                result = normalise(spec, raw, node_id)
                if result.expand is not None:
                    self._splice(node_id, spec, result)
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
    ) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
        """One call per list item: each output collects the items (list outputs are concatenated)."""
        n = len(spec.outputs)
        columns: list[list[Any]] = [[] for _ in range(n)]
        ui: dict[str, Any] | None = None
        for raw in raws:
            if type(raw) is ExecutionBlocker:
                for column in columns:
                    column.append(raw)
                continue
            result = normalise(spec, raw, node_id)
            if result.expand is not None:
                raise ResultError(f"node {node_id} ({spec.class_type}) cannot expand while running once per list item")
            for column, value, is_list in zip(columns, result.outputs, info.list_outputs, strict=True):
                if is_list:
                    column.extend(_as_items(value))
                else:
                    column.append(value)
            if result.ui:
                ui = ui or {}
                for key, value in result.ui.items():
                    ui.setdefault(key, []).extend(value if isinstance(value, list | tuple) else [value])
        return tuple(ItemList(c) for c in columns), ui

    def _store(self, node_id: str, outputs: tuple[Any, ...], ui: dict[str, Any] | None) -> None:
        self.results[node_id] = outputs
        self.executed.append(node_id)
        if ui is not None:
            self.uis[node_id] = ui
            self.emit(NodeExecuted(self.prompt_id, node_id, self.display.get(node_id, node_id), ui))
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
        sources = [unevaluated[name] for name in wanted if name in unevaluated]
        return bool(sources) and self.plan.wait_on(node_id, sources)

    def _hidden(self, node_id: str, kind: str) -> Any:
        if kind == HIDDEN_UNIQUE_ID:
            return node_id
        if kind == HIDDEN_PROMPT:
            if self.prompt_api is None:
                self.prompt_api = self.source.to_api()
            return self.prompt_api
        if kind == HIDDEN_EXTRA_PNGINFO:
            return self.extra_data.get("extra_pnginfo")
        if kind == HIDDEN_DYNPROMPT:
            return self.workflow
        return None

    # -- node expansion ------------------------------------------------------------------------------------------

    def _splice(self, node_id: str, spec: NodeSpec, result: NodeResult) -> None:
        """Add the node's sub-workflow under composite ids ("12:5") and make the node wait for its result links."""
        try:
            graph = parse_api(result.expand)
        except WorkflowError as exc:
            raise self._failure(node_id, exc) from exc
        ids = {sub_id: f"{node_id}:{sub_id}" for sub_id in graph.nodes}
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
        for sub in added:
            self.nodes[sub.id] = sub
            self.display[sub.id] = self.display.get(node_id, node_id)
        self._check_expansion_cycles(node_id, added)
        self.expansions[node_id] = _Expansion(outputs, result.ui)
        sub_outputs = [sub.id for sub in added if self.specs[sub.class_type].output_node]
        waits = self.plan.wait_on(node_id, [v.node for v in outputs if type(v) is Link])
        self.plan.require(sub_outputs)
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
        outputs = tuple(results[v.node][v.output] if type(v) is Link else v for v in expansion.outputs)
        self._store(node_id, outputs, expansion.ui)

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
