"""The flags every command shares, and the `RuntimeSettings` they give (the composition root builds from those)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.packs import IMPORT_TIMEOUT
from runtime.settings import PRECISIONS, ROOT, RuntimeSettings


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
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="compute dtype: auto (fp32 on the CPU, keeping 16-bit weights as stored; bf16 or fp16 on a GPU), or "
        "fp32 / bf16 / fp16 for weights and compute (bf16 is fast on CPUs with AVX512-BF16/AMX)",
    )
    parser.add_argument(
        "--lowvram",
        action="store_true",
        help="run models that do not fit the device's free memory block by block, their weights kept in RAM",
    )
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
    # Flags of some commands only (serve: previews and cache; run/validate: --demo-models), with their defaults here
    # so that `runtime_settings` reads every namespace alike.
    parser.set_defaults(preview_method="auto", demo_models=False, cache_lru=None, cache_none=False)


def runtime_settings(args: argparse.Namespace) -> RuntimeSettings:
    """The parsed flags as the composition root's settings."""
    return RuntimeSettings(
        base_directory=args.base_directory,
        output_directory=args.output_directory,
        input_directory=args.input_directory,
        temp_directory=args.temp_directory,
        user_directory=args.user_directory,
        models_directory=args.models_directory,
        extra_model_paths_configs=tuple(args.extra_model_paths_config),
        cpu=args.cpu,
        precision=args.precision,
        lowvram=args.lowvram,
        strict_model_names=args.strict_model_names,
        load_packs=not args.disable_custom_nodes,
        disabled_packs=frozenset(args.disable_pack),
        pack_import_timeout=args.pack_import_timeout or None,
        preview_method=args.preview_method or "auto",  # serve's unset flag: previews made, sent to who asks
        demo_models=args.demo_models,
        cache_max_entries=args.cache_lru or None,
        cache_classic=args.cache_lru == 0,
        cache_outputs=not args.cache_none,
    )
