"""`python main.py validate FILE`: every problem that would stop the workflow from running, per node."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.runtime import add_common_arguments, runtime_settings
from cli.workflow_args import add_file_argument, add_workflow_arguments, load_from_args, print_problems
from engine.admit import Rejected, admit
from engine.workflow import Workflow, WorkflowError, parse_api
from formats.problems import Problem, WorkflowFileError
from runtime.build import Runtime, build_runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_file_argument(parser)
    add_workflow_arguments(parser)
    add_common_arguments(parser)


def validate_command(args: argparse.Namespace, runtime: Runtime) -> int:
    try:
        loaded = load_from_args(args, runtime)
        workflow = parse_api(loaded.api)
    except WorkflowFileError as exc:
        print_problems(exc.problems)
        return 1
    except WorkflowError as exc:
        print_problems([Problem(exc.type, f"{args.file}: {exc}", node_id=exc.node_id)])
        return 1
    try:
        admission = admit(workflow, runtime.registry)
    except Rejected as rejected:
        response = rejected.result.to_response()
        _print_node_errors(response["node_errors"], workflow, "error")
        if not response["node_errors"]:
            print(f"error [{response['error']['type']}]: {response['error']['message']}", file=sys.stderr)
        return 1
    _print_node_errors(admission.node_errors(), workflow, "skipped")
    outputs = ", ".join(admission.outputs)
    print(f"ok: {args.file} ({loaded.format} format, {len(loaded.api)} nodes, outputs {outputs})")
    return 0


def _print_node_errors(node_errors: dict[str, Any], workflow: Workflow, kind: str) -> None:
    """One line per problem; `kind` says whether it stops the run ("error") or drops an output ("skipped")."""
    for node_id, entry in node_errors.items():
        label = workflow.nodes[node_id].label if node_id in workflow else node_id
        where = f"node {label} ({entry['class_type']})"
        for error in entry["errors"]:
            message = error["message"]
            # engine messages often name their node already; say it once
            text = message if message.startswith((where, f"node {label}:", f"node {label} ")) else f"{where}: {message}"
            print(f"{kind} [{error['type']}]: {text}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    return validate_command(args, build_runtime(runtime_settings(args)))
