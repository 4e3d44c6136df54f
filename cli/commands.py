"""The table of sub-commands: name -> (add_arguments, run, help). Each command module adds its own row here."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from cli import nodes

Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]

COMMANDS: dict[str, Command] = {}
COMMANDS["nodes"] = (nodes.add_arguments, nodes.run, "list every node type with the pack it comes from")
