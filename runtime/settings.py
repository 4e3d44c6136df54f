"""What a runtime is built from: plain, picklable data (the Ray pool ships it to every worker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.packs import IMPORT_TIMEOUT

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""The `--precision` choices (diffusion.memory reads the same names; settings import no torch)."""

ROOT = Path(__file__).resolve().parent.parent
"""The checkout: the default base directory (models/, input/, output/, ...) and the code Ray ships to workers."""


@dataclass(frozen=True)
class RuntimeSettings:
    """Folders, device, node packs, previews and output cache, with the defaults of `python main.py`."""

    base_directory: Path = ROOT
    output_directory: Path | None = None
    input_directory: Path | None = None
    temp_directory: Path | None = None
    user_directory: Path | None = None
    models_directory: Path | None = None
    extra_model_paths_configs: tuple[Path, ...] = ()
    cpu: bool = False
    precision: str = "auto"  # `--precision`: auto, fp32, bf16 or fp16 (diffusion.memory.pick_dtype)
    lowvram: bool = False  # `--lowvram`: models larger than the device's free memory run block by block
    strict_model_names: bool = False  # model names exactly as written: no resolution rules (`--strict-model-names`)
    load_packs: bool = True
    disabled_packs: frozenset[str] = field(default_factory=frozenset)
    pack_import_timeout: float | None = IMPORT_TIMEOUT  # None: no limit
    preview_method: str = "auto"
    demo_models: bool = False  # write the demo files even where real models exist (`--demo-models`)
    cache_max_entries: int | None = None  # None: unbounded
    cache_classic: bool = False  # keep only the last prompt's outputs (`--cache-lru 0`)
    cache_outputs: bool = True  # False: keep no node outputs between jobs (`--cache-none`)
