"""`python main.py convert FILE --to api|canvas [-o OUT]`: convert a workflow file between the two formats."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cli.runtime import add_common_arguments, runtime_settings
from cli.workflow_args import add_file_argument, print_problems
from engine.registry import NodeRegistry
from formats.canvas import convert_canvas
from formats.canvas_export import api_to_canvas
from formats.problems import WorkflowFileError
from formats.workflow_files import read_document
from runtime.build import build_runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_file_argument(parser)
    parser.add_argument("--to", choices=("api", "canvas"), required=True, help="the format to write")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    add_common_arguments(parser)


def convert_document(args: argparse.Namespace, registry: NodeRegistry) -> dict[str, Any]:
    """The converted workflow. A file already in the asked format comes back as it is, so nothing it holds
    (layout, groups, unknown `extra` fields, node properties) is lost."""
    doc = read_document(args.file)
    if args.to == "api":
        if doc.api is not None:
            return doc.api
        assert doc.canvas is not None
        conversion = convert_canvas(doc.canvas, registry)
        if conversion.problems:
            raise WorkflowFileError(conversion.problems)
        for note in conversion.notes:
            print(f"note: {note}", file=sys.stderr)
        return conversion.api
    if doc.canvas is not None:
        return doc.canvas
    assert doc.api is not None
    return api_to_canvas(doc.api, registry)


def convert_command(args: argparse.Namespace, registry: NodeRegistry) -> int:
    try:
        result = convert_document(args, registry)
    except WorkflowFileError as exc:
        print_problems(exc.problems)
        return 1
    text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


def run(args: argparse.Namespace) -> int:
    return convert_command(args, build_runtime(runtime_settings(args)).registry)
