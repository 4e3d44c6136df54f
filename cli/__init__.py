"""Command-line front end: `main(argv)` parses the flags and runs one sub-command of `cli.commands.COMMANDS`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cli.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="Loom: a node-based workflow engine for diffusion.")
    sub = parser.add_subparsers(dest="command")
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help))
    return parser


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    # No sub-command (or only flags) means "serve", as users of the ecosystem expect from `python main.py --port N`.
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command].run(args)
