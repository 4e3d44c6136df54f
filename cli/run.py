"""`python main.py run FILE [--set NODE.INPUT=VALUE ...] [--model-map NAME=FILE ...] [--demo-models]`: validate and
run a workflow (API or canvas JSON, or an image that carries one) without a server."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any, TextIO

from cli.runtime import add_common_arguments, runtime_settings
from cli.workflow_args import add_file_argument, add_workflow_arguments, load_from_args, print_problems
from engine.context import RunControl
from engine.environment import NodeEnvironment
from engine.events import (
    Event,
    JobFailed,
    JobInterrupted,
    NodeExecuting,
    NodeProgress,
    NodesCached,
    NodeWarning,
)
from engine.executor import Executor, RunOutcome
from engine.folders import Folders, UnsafePath
from engine.registry import NodeRegistry
from engine.validate import validate
from engine.workflow import Workflow, WorkflowError, parse_api
from formats.problems import Problem
from runtime.build import build_runtime

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
    """Validate, run and report; returns the process exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    checked = validate(workflow, registry)
    if not checked.ok:
        print_validation_errors(checked.to_response(), workflow, err)
        return EXIT_FAILED
    executor = executor or Executor(registry, env=env)
    printer = ProgressPrinter(out, tty=_is_tty(out))
    control = RunControl()
    done: list[RunOutcome] = []
    worker = threading.Thread(
        target=lambda: done.append(
            executor.run(
                workflow,
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

    def __init__(self, out: TextIO, tty: bool) -> None:
        self.out = out
        self.tty = tty
        self.current = ""
        self.count = 0
        self.last_tenth = -1
        self.bar_open = False
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            if isinstance(event, NodesCached) and event.nodes:
                self._line(f"{len(event.nodes)} output(s) served from cache")
            elif isinstance(event, NodeExecuting):
                self.count += 1
                self.current = f"{event.node} {event.class_type}"
                self.last_tenth = -1
                self._line(f"[{self.count}] {self.current}")
            elif isinstance(event, NodeProgress):
                self._progress(event)
            elif isinstance(event, NodeWarning):
                self._line(f"warning: node {event.node}: {event.message}")
            elif isinstance(event, JobInterrupted):
                self._line(f"interrupted at node {event.node_id}" if event.node_id else "interrupted")

    def _progress(self, event: NodeProgress) -> None:
        fraction = min(1.0, max(0.0, event.value / event.max)) if event.max else 1.0
        if self.tty:
            filled = round(fraction * self.BAR)
            bar = "#" * filled + "-" * (self.BAR - filled)
            self.out.write(f"\r  [{bar}] {event.value:g}/{event.max:g} {self.current}")
            self.out.flush()
            self.bar_open = True
            return
        tenth = int(fraction * 10)
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            self._line(f"  {self.current}: {event.value:g}/{event.max:g}")

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
