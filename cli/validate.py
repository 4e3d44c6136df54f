"""`python main.py validate FILE`: every problem that would stop the workflow from running, per node."""

from __future__ import annotations

import argparse

from cli.commands import COMMANDS
from cli.runtime import Runtime, add_common_arguments, build_runtime
from cli.workflow_args import add_file_argument, add_workflow_arguments, load_from_args, print_problems
from engine.problems import WorkflowFileError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_file_argument(parser)
    add_workflow_arguments(parser)
    add_common_arguments(parser)


def validate_command(args: argparse.Namespace, runtime: Runtime) -> int:
    try:
        loaded = load_from_args(args, runtime)
    except WorkflowFileError as exc:
        print_problems(exc.problems)
        return 1
    print(f"ok: {args.file} ({loaded.format} format, {len(loaded.api)} nodes)")
    return 0


def run(args: argparse.Namespace) -> int:
    return validate_command(args, build_runtime(args))


COMMANDS["validate"] = (add_arguments, run, "check a workflow file and print every problem")
