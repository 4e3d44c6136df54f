"""`python main.py validate FILE`: every problem that would stop the workflow from running, per node."""

from __future__ import annotations

import argparse
import sys

from cli.runtime import add_common_arguments, runtime_settings
from cli.workflow_args import add_file_argument, add_workflow_arguments, load_from_args, print_problems
from engine.validate import validate
from engine.workflow import WorkflowError, parse_api
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
    result = validate(workflow, runtime.registry)
    if not result.ok:
        response = result.to_response()
        for node_id, entry in response["node_errors"].items():
            label = workflow.nodes[node_id].label if node_id in workflow else node_id
            for error in entry["errors"]:
                where = f"node {label} ({entry['class_type']})"
                print(f"error [{error['type']}]: {where}: {error['message']}", file=sys.stderr)
        if not response["node_errors"]:
            print(f"error [{response['error']['type']}]: {response['error']['message']}", file=sys.stderr)
        return 1
    print(f"ok: {args.file} ({loaded.format} format, {len(loaded.api)} nodes, outputs {', '.join(result.outputs)})")
    return 0


def run(args: argparse.Namespace) -> int:
    return validate_command(args, build_runtime(runtime_settings(args)))
