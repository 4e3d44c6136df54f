"""Command-line front end. Each sub-command lives in its own module and registers itself in COMMANDS."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from cli import commands

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = (
    commands.COMMANDS
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="Loom: a node-based workflow engine for diffusion.")
    sub = parser.add_subparsers(dest="command")
    for name, (add_arguments, _run, help_text) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text))
    return parser


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    # No sub-command (or only flags) means "serve", as users of the ecosystem expect from `python main.py --port N`.
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command][1](args)
