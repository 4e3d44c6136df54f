"""Flags and helpers shared by the commands that read a workflow file (run, validate, convert)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from catalog.names import file_resolver
from diffusion.demo import DEMO_FILES
from formats.problems import Problem
from formats.workflow_files import LoadedWorkflow, ModelResolver, load_workflow, parse_model_map
from runtime.build import Runtime


def add_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="workflow: API or canvas JSON, or a PNG/WebP/JPEG that carries one")


def add_workflow_arguments(parser: argparse.ArgumentParser) -> None:
    """`--set` and `--model-map`, for commands that prepare a workflow to run."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NODE.INPUT=VALUE",
        help="override an input; NODE is a node id, a title or a class type naming one node "
        "(--set KSampler.seed=7, --set 3.steps=4); VALUE is read as JSON when it parses, else as text",
    )
    parser.add_argument(
        "--model-map",
        dest="model_map",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="run with model file FILE wherever the workflow names model file NAME "
        "(--model-map v1-5-pruned-emaonly.safetensors=my-model.safetensors)",
    )
    parser.add_argument(
        "--demo-models",
        action="store_true",
        help="run with Loom's tiny demo model of the same kind (checkpoint, LoRA, ControlNet, upscaler) wherever "
        "the workflow names a model file that is not there (after --model-map); writes the demo files if missing. "
        "Runs any workflow end to end for a try-out; its images are noise",
    )


def print_problems(problems: Iterable[Problem], stream: TextIO | None = None) -> None:
    """One line per problem (on standard error by default), each naming its node and its kind."""
    for problem in problems:
        print(f"error [{problem.type}]: {problem.message}", file=stream or sys.stderr)


def model_resolver(runtime: Runtime) -> ModelResolver | None:
    """Model-name resolution over the runtime's model index, unless `--strict-model-names`."""
    if runtime.settings.strict_model_names:
        return None
    return file_resolver(runtime.registry, runtime.models)


def load_from_args(args: argparse.Namespace, runtime: Runtime) -> LoadedWorkflow:
    """The workflow named on the command line with `--model-map` and `--set` applied and model names resolved (each
    resolved name printed on standard error); raises WorkflowFileError."""
    loaded = load_workflow(
        args.file,
        runtime.registry,
        runtime.folders,
        model_map=parse_model_map(args.model_map),
        model_fallbacks=DEMO_FILES if args.demo_models else None,
        resolve_models=model_resolver(runtime),
        overrides=args.overrides,
    )
    for note in loaded.notes:
        print(f"resolved model: {note}", file=sys.stderr)
    for note in loaded.left_out:
        print(f"note: {note}", file=sys.stderr)
    return loaded
