"""`python main.py run FILE [--set NODE.INPUT=VALUE ...] [--model-map NAME=FILE ...] [--demo-models]`: validate and
run a workflow (API or canvas JSON, or an image that carries one) without a server."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from cli.runtime import add_common_arguments, runtime_settings
from cli.workflow_args import add_file_argument, add_workflow_arguments, load_from_args, print_problems
from engine.admit import Rejected, admit
from engine.context import RunControl
from engine.environment import NodeEnvironment
from engine.events import Event, JobFailed
from engine.executor import Executor, RunOutcome
from engine.folders import Folders, UnsafePath
from engine.registry import NodeRegistry
from engine.workflow import Workflow, WorkflowError, parse_api
from formats.problems import Problem
from runtime.build import build_runtime
from server.wire import wire_messages

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    add_file_argument(parser)
    add_workflow_arguments(parser)


def run(args: argparse.Namespace) -> int:
    runtime = build_runtime(runtime_settings(args))
    try:
        loaded = load_from_args(args, runtime)
        workflow = parse_api(loaded.api)
    except WorkflowError as exc:
        print_problems(getattr(exc, "problems", ()) or [Problem(exc.type, f"{args.file}: {exc}")])
        return EXIT_FAILED
    canvas = loaded.canvas_to_embed(runtime.registry)
    extra_data = {"extra_pnginfo": {"workflow": canvas}} if canvas is not None else None
    return run_workflow(workflow, runtime.registry, runtime.env, folders=runtime.folders, extra_data=extra_data)


def run_workflow(
    workflow: Workflow,
    registry: NodeRegistry,
    env: NodeEnvironment | None = None,
    *,
    folders: Folders | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    executor: Executor | None = None,
    extra_data: Mapping[str, Any] | None = None,
) -> int:
    """Accept (validate and convert, as the server does), run and report; returns the process exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        checked = admit(workflow, registry, extra_data=extra_data)
    except Rejected as rejected:
        print_validation_errors(rejected.result.to_response(), workflow, err)
        return EXIT_FAILED
    for node_id, entry in checked.node_errors().items():
        for problem in entry["errors"]:
            print(f"warning: output skipped: node {node_id}: {problem['message']}", file=err)
    executor = executor or Executor(registry, env=env)
    class_types = {node_id: node.class_type for node_id, node in checked.workflow.nodes.items()}
    printer = ProgressPrinter(out, tty=_is_tty(out), class_types=class_types)
    control = RunControl()
    done: list[RunOutcome] = []
    worker = threading.Thread(
        target=lambda: done.append(
            executor.run(
                checked.workflow,
                outputs=checked.outputs,
                prompt_id=str(uuid.uuid4()),
                emit=printer,
                control=control,
                extra_data=extra_data,
            )
        ),
        name="loom-run",
        daemon=True,
    )
    started = time.perf_counter()
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        control.interrupt()
        worker.join()
    printer.close()
    if not done:
        print("error: the run ended without an outcome", file=err)
        return EXIT_FAILED
    outcome = done[0]
    elapsed = time.perf_counter() - started
    if outcome.status == "error" and outcome.error is not None:
        print_failure(outcome.error, err)
        return EXIT_FAILED
    if outcome.status == "interrupted":
        print("interrupted", file=err)
        return EXIT_INTERRUPTED
    print_outputs(outcome.outputs, folders, out)
    print(
        f"done in {elapsed:.2f} s: {len(outcome.executed)} nodes executed, {len(outcome.cached)} served from cache",
        file=out,
    )
    return 0


def print_validation_errors(response: Mapping[str, Any], workflow: Workflow, err: TextIO) -> None:
    error = response["error"]
    print(f"error: {error['message']} ({error['type']})", file=err)
    for node_id, entry in response["node_errors"].items():
        node = workflow.nodes.get(node_id)
        label = node.label if node else node_id
        print(f"  node {label} [{entry['class_type']}]:", file=err)
        for problem in entry["errors"]:
            print(f"    - {problem['type']}: {problem['message']}", file=err)


def print_failure(failure: JobFailed, err: TextIO) -> None:
    print(
        f"error: node {failure.node_id} ({failure.node_type}) failed: "
        f"{failure.exception_type}: {failure.exception_message}",
        file=err,
    )
    for line in failure.traceback[-12:]:
        print(f"  {line}", file=err)
    if failure.current_inputs:
        print(f"  inputs: {json.dumps(failure.current_inputs, default=str)[:500]}", file=err)


def print_outputs(outputs: Mapping[str, Mapping[str, Any]], folders: Folders | None, out: TextIO) -> None:
    """Where each output went: files as paths, other display values in short."""
    for node_id, ui in outputs.items():
        for key, values in ui.items():
            items = values if isinstance(values, list) else [values]
            for item in items:
                print(f"node {node_id}: {key}: {_describe(item, folders)}", file=out)


def _describe(item: Any, folders: Folders | None) -> str:
    if isinstance(item, Mapping) and "filename" in item:
        if folders is not None:
            try:
                base = folders.typed_dir(str(item.get("type", "output")))
                return str(base / str(item.get("subfolder") or "") / str(item["filename"]))
            except UnsafePath:
                pass
        return "/".join(p for p in (str(item.get("subfolder") or ""), str(item["filename"])) if p)
    text = repr(item)
    return text if len(text) <= 120 else text[:120] + "..."


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ProgressPrinter:
    """An EventSink printing progress: a redrawn bar on a terminal, plain lines (every tenth) otherwise."""

    BAR = 30

    def __init__(self, out: TextIO, tty: bool, class_types: Mapping[str, str] | None = None) -> None:
        self.out = out
        self.tty = tty
        self.class_types = dict(class_types or {})
        self.shows: dict[str, Callable[[dict[str, Any]], None]] = {
            "execution_cached": self._on_execution_cached,
            "executing": self._on_executing,
            "progress": self._on_progress,
            "node_warning": self._on_node_warning,
            "progress_text": self._on_progress_text,
            "execution_interrupted": self._on_execution_interrupted,
        }
        self.current = ""
        self.count = 0
        self.last_tenth = -1
        self.bar_open = False
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            for message in wire_messages(event):
                show = self.shows.get(message.type)
                if show is not None:
                    show(message.data)

    def _on_execution_cached(self, data: dict[str, Any]) -> None:
        if data["nodes"]:
            self._line(f"{len(data['nodes'])} node(s) already in the cache")

    def _on_executing(self, data: dict[str, Any]) -> None:
        if data["node"] is None:
            return
        self.count += 1
        self.current = f"{data['node']} {self.class_types.get(data['node'], '')}".rstrip()
        self.last_tenth = -1
        self._line(f"[{self.count}] {self.current}")

    def _on_node_warning(self, data: dict[str, Any]) -> None:
        self._line(f"warning: node {data['node']}: {data['message']}")

    def _on_progress_text(self, data: dict[str, Any]) -> None:
        self._line(f"  node {data['node']}: {data['text']}")

    def _on_execution_interrupted(self, data: dict[str, Any]) -> None:
        self._line(f"interrupted at node {data['node_id']}" if data["node_id"] else "interrupted")

    def _on_progress(self, data: dict[str, Any]) -> None:
        value, max_ = data["value"], data["max"]
        fraction = min(1.0, max(0.0, value / max_)) if max_ else 1.0
        if self.tty:
            filled = round(fraction * self.BAR)
            bar = "#" * filled + "-" * (self.BAR - filled)
            self.out.write(f"\r  [{bar}] {value:g}/{max_:g} {self.current}")
            self.out.flush()
            self.bar_open = True
            return
        tenth = int(fraction * 10)
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            self._line(f"  {self.current}: {value:g}/{max_:g}")

    def _line(self, text: str) -> None:
        if self.bar_open:
            self.out.write("\n")
            self.bar_open = False
        self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        with self.lock:
            if self.bar_open:
                self.out.write("\n")
                self.bar_open = False
            self.out.flush()
