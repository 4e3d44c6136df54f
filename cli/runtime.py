"""Builds what every command needs from the shared flags: the folders, the node registry and the node environment."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from diffusion.demo import DEMO_FILES, ensure_demo_models
from engine.folders import Folders, apply_extra_model_paths
from engine.packs import IMPORT_TIMEOUT, PackSummary, format_summary, load_packs
from engine.registry import NodeRegistry
from nodes import register_builtin
from nodes.shared import node_environment

ROOT = Path(__file__).resolve().parent.parent


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by serving and headless runs, with the ecosystem's names."""
    parser.add_argument("--base-directory", type=Path, default=ROOT, help="folder holding models/, input/, output/...")
    parser.add_argument("--output-directory", type=Path)
    parser.add_argument("--input-directory", type=Path)
    parser.add_argument("--temp-directory", type=Path)
    parser.add_argument("--user-directory", type=Path)
    parser.add_argument("--models-directory", type=Path, help="root of checkpoints/, vae/, loras/, ...")
    parser.add_argument("--extra-model-paths-config", type=Path, action="append", default=[], metavar="YAML")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    parser.add_argument(
        "--strict-model-names",
        action="store_true",
        help="use model file names exactly as a workflow gives them (no separator, subfolder, extension or hash "
        "matching)",
    )
    parser.add_argument(
        "--disable-all-custom-nodes",
        "--disable-custom-nodes",
        dest="disable_custom_nodes",
        action="store_true",
        help="load no node packs from custom_nodes/",
    )
    parser.add_argument(
        "--disable-pack",
        action="append",
        default=[],
        metavar="NAME",
        help="do not load this node pack (repeatable); renaming it NAME.disabled does the same",
    )
    parser.add_argument(
        "--pack-import-timeout",
        type=float,
        default=IMPORT_TIMEOUT,
        metavar="SECONDS",
        help=f"fail a node pack whose import takes longer (default {IMPORT_TIMEOUT:g}; 0: no limit)",
    )


@dataclass
class Runtime:
    folders: Folders
    registry: NodeRegistry
    env: Any
    packs: list[PackSummary] = field(default_factory=list)

    @property
    def extensions(self) -> dict[str, Path]:
        """Pack name -> its front-end folder (WEB_DIRECTORY), for the packs that loaded."""
        return {p.name: Path(p.web_directory) for p in self.packs if p.status == "ok" and p.web_directory}


def build_folders(args: argparse.Namespace) -> Folders:
    folders = Folders.under(
        args.base_directory,
        models_dir=args.models_directory,
        input=args.input_directory,
        output=args.output_directory,
        temp=args.temp_directory,
        user=args.user_directory,
    )
    for config_path in args.extra_model_paths_config:
        config = yaml.safe_load(config_path.read_text()) or {}
        apply_extra_model_paths(folders, config, config_path.resolve().parent)
    folders.ensure()
    return folders


def build_runtime(args: argparse.Namespace) -> Runtime:
    """Folders, then the node environment, then the registry (built-in nodes first, then packs)."""
    folders = build_folders(args)
    write_demo_models(folders, always=bool(getattr(args, "demo_models", False)))
    env = node_environment(
        folders,
        force_cpu=bool(getattr(args, "cpu", False)),
        preview_method=str(getattr(args, "preview_method", None) or "auto"),
    )
    registry = NodeRegistry(env)
    register_builtin(registry)
    packs = [] if args.disable_custom_nodes else load_custom_nodes(args, folders, registry, env)
    return Runtime(folders, registry, env, packs)


def write_demo_models(folders: Folders, *, always: bool = False) -> None:
    """The demo checkpoint and its LoRA/ControlNet/upscaler stand-ins, each in the first directory of its folder
    when that folder is empty (with `always`, whenever the demo file is missing: `--demo-models` needs them)."""
    targets = {}
    for folder in DEMO_FILES:
        dirs = folders.model_dirs(folder)
        if dirs:
            targets[folder] = (dirs[0], folders.list_models(folder))
    ensure_demo_models(targets, always=always)


def load_custom_nodes(
    args: argparse.Namespace, folders: Folders, registry: NodeRegistry, env: Any
) -> list[PackSummary]:
    """Install the host-module shims packs import, load the packs, and print the summary table to stderr."""
    import compat

    compat.install(compat.Host(folders=folders, registry=registry, env=env, cpu=getattr(args, "cpu", False)))
    packs = load_packs(
        registry,
        folders.custom_nodes,
        disabled=set(getattr(args, "disable_pack", ())),
        timeout=getattr(args, "pack_import_timeout", IMPORT_TIMEOUT) or None,
    )
    if packs:
        print(format_summary(packs), file=sys.stderr)
    return packs
