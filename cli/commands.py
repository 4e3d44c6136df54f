"""The table of sub-commands: name -> (add_arguments, run, help). Each command module adds its own row here."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]

COMMANDS: dict[str, Command] = {}

# Each command module adds its own row when imported: one import per command.
from cli import convert, nodes, run, serve, validate  # noqa: E402, F401
