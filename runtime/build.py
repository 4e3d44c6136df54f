"""Builds the runtime every entry point shares: folders, then the node environment, then the registry (built-in
nodes first, then packs); and the output cache, executor and job queue that run workflows against it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from catalog.hashes import MODEL_INDEX_FILE, HashCache
from catalog.index import ModelIndex
from catalog.names import prompt_resolver
from diffusion.demo import DEMO_FILES, DEMO_NAME, ensure_demo_models
from diffusion.demo_dit import DIT_DEMO_MODELS, ensure_dit_demo_models
from engine.cache import OutputCache
from engine.environment import NodeEnvironment
from engine.executor import Executor
from engine.folders import Folders, apply_extra_model_paths
from engine.jobs import HistoryMessages, JobQueue, Runner
from engine.packs import PackSummary, format_summary, load_packs
from engine.registry import NodeRegistry
from engine.store import Store
from nodes import register_builtin
from nodes.shared import node_environment
from runtime.settings import RuntimeSettings


@dataclass
class Runtime:
    settings: RuntimeSettings
    folders: Folders
    registry: NodeRegistry
    env: NodeEnvironment
    models: ModelIndex
    packs: list[PackSummary] = field(default_factory=list)

    @property
    def extensions(self) -> dict[str, Path]:
        """Pack name -> its front-end folder (WEB_DIRECTORY), for the packs that loaded."""
        from compat.host import legacy_extensions

        found = {p.name: Path(p.web_directory) for p in self.packs if p.status == "ok" and p.web_directory}
        if self.packs:  # folders older packs copied into the host folder's web/extensions (compat.host)
            for name, folder in legacy_extensions(self.folders).items():
                found.setdefault(name, folder)
        return found

    @property
    def pack_summaries(self) -> list[PackSummary] | None:
        """Each pack found, for /system_stats and the canvas; None when packs are turned off."""
        return self.packs if self.settings.load_packs else None


def build_folders(settings: RuntimeSettings) -> Folders:
    folders = Folders.under(
        settings.base_directory,
        models_dir=settings.models_directory,
        input=settings.input_directory,
        output=settings.output_directory,
        temp=settings.temp_directory,
        user=settings.user_directory,
    )
    for config_path in settings.extra_model_paths_configs:
        config = yaml.safe_load(config_path.read_text()) or {}
        apply_extra_model_paths(folders, config, config_path.resolve().parent)
    folders.ensure()
    return folders


def build_runtime(settings: RuntimeSettings) -> Runtime:
    """Folders (with the demo models where a folder is empty), the node environment, the registry and its packs."""
    folders = build_folders(settings)
    write_demo_models(folders, always=settings.demo_models)
    env = node_environment(
        folders,
        force_cpu=settings.cpu,
        preview_method=settings.preview_method,
        precision=settings.precision,
        lowvram=settings.lowvram,
    )
    registry = NodeRegistry(env)
    register_builtin(registry)
    packs = load_custom_nodes(settings, folders, registry, env) if settings.load_packs else []
    return Runtime(settings, folders, registry, env, model_index(folders), packs)


def model_index(folders: Folders) -> ModelIndex:
    """Every model file with the hashes already known (from `user/model_index.db`); hashing the rest is the
    server's background job, or done on demand by the CLI."""
    index = ModelIndex(folders, HashCache(folders.user / MODEL_INDEX_FILE))
    index.scan()
    return index


def write_demo_models(folders: Folders, *, always: bool = False) -> None:
    """The demo checkpoint and its LoRA/ControlNet/upscaler/FLUX stand-ins, each in the first directory of its folder
    when that folder is empty (with `always`, whenever the demo file is missing: `--demo-models` needs them)."""
    targets = {}
    for folder in DEMO_FILES:
        dirs = folders.model_dirs(folder)
        if dirs:
            targets[folder] = (dirs[0], folders.list_models(folder))
    ensure_demo_models(targets, always=always)
    dit_targets = {}
    for folder in {m.folder for m in DIT_DEMO_MODELS}:
        dirs = folders.model_dirs(folder)
        if dirs:
            dit_targets[folder] = (dirs[0], targets.get(folder, (None, folders.list_models(folder)))[1])
    ensure_dit_demo_models(dit_targets, DEMO_NAME in folders.list_models("checkpoints"), always=always)


def load_custom_nodes(
    settings: RuntimeSettings, folders: Folders, registry: NodeRegistry, env: NodeEnvironment
) -> list[PackSummary]:
    """Install the host-module shims packs import, load the packs, and print the summary table to stderr."""
    import compat
    from compat.adapt import adapt
    from compat.host import redirect_legacy_web

    compat.install(compat.Host(folders=folders, registry=registry, env=env, cpu=settings.cpu))
    redirect_legacy_web(folders)
    packs = load_packs(
        registry,
        folders.custom_nodes,
        disabled=settings.disabled_packs,
        timeout=settings.pack_import_timeout,
        adapt=adapt,
    )
    if packs:
        print(format_summary(packs), file=sys.stderr)
    return packs


def output_cache(settings: RuntimeSettings) -> OutputCache:
    """No outputs kept between jobs (`--cache-none`), at most N (`--cache-lru N`), only the last prompt's
    (`--cache-lru 0`, classic mode), or all that fit."""
    if not settings.cache_outputs:
        return OutputCache(max_bytes=0)
    if settings.cache_classic:
        return OutputCache(classic=True)
    return OutputCache(max_entries=settings.cache_max_entries)


def build_executor(runtime: Runtime) -> Executor:
    """The in-process runner: this runtime's registry and environment, with the cache the settings ask for."""
    return Executor(runtime.registry, cache=output_cache(runtime.settings), env=runtime.env)


def build_job_queue(
    runtime: Runtime, store: Store, history_messages: HistoryMessages, runner: Runner | None = None, workers: int = 1
) -> JobQueue:
    """The persistent queue over `store`, running jobs on `runner` (by default an executor in this process);
    `history_messages` is the front end's mapping of a job's events to the messages its history entry keeps."""
    runner = runner if runner is not None else build_executor(runtime)
    names = None if runtime.settings.strict_model_names else prompt_resolver(runtime.registry, runtime.models)
    return JobQueue(store, runner, history_messages, runtime.env, workers=workers, names=names)
