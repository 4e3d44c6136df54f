"""Builds what every command needs from the shared flags: the folders, the node registry and the node environment."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.folders import Folders, apply_extra_model_paths
from engine.registry import NodeRegistry

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
        "--disable-all-custom-nodes",
        "--disable-custom-nodes",
        dest="disable_custom_nodes",
        action="store_true",
        help="load no node packs from custom_nodes/",
    )


@dataclass
class Runtime:
    folders: Folders
    registry: NodeRegistry
    env: Any


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
    env: Any = None
    registry = NodeRegistry(env)
    return Runtime(folders, registry, env)
