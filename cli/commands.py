"""The table of sub-commands, in one place: each command module exports `add_arguments` and `run`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from cli import convert, nodes, run, serve, validate


@dataclass(frozen=True)
class Command:
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    help: str


COMMANDS: dict[str, Command] = {
    "serve": Command(serve.add_arguments, serve.run, "serve the canvas and the HTTP + WebSocket API (the default)"),
    "run": Command(run.add_arguments, run.run, "validate and run a workflow file without a server"),
    "validate": Command(validate.add_arguments, validate.run, "check a workflow file and print every problem"),
    "convert": Command(
        convert.add_arguments, convert.run, "convert a workflow file between the API and canvas formats"
    ),
    "nodes": Command(nodes.add_arguments, nodes.run, "list every node type with the pack it comes from"),
}
