"""The embedded demo models: a tiny random-weight SD 1.x-architecture checkpoint and stand-ins for the other model
kinds the example workflows load (a LoRA, a ControlNet, an ESRGAN upscaler, a CLIP vision encoder, an IP-Adapter),
all in the real file formats.

On a fresh machine there are no weights and nothing can be downloaded; Loom writes these files into empty model
folders so that every example workflow runs end to end in seconds on a CPU, through the same loaders real files go
through. Their images are noise. They are written with numpy from bundled tensor tables (no torch import, well under
a second), deterministically: the tables come from `diffusion/tiny.py`'s builders.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

CONFIGS = Path(__file__).resolve().parent / "configs"
LAYOUT_FILE = CONFIGS / "demo_layout.json"
CONTROLNET_LAYOUT_FILE = CONFIGS / "demo_controlnet_layout.json"
UPSCALER_LAYOUT_FILE = CONFIGS / "demo_upscaler_layout.json"
CLIP_VISION_LAYOUT_FILE = CONFIGS / "demo_clip_vision_layout.json"
IP_ADAPTER_LAYOUT_FILE = CONFIGS / "demo_ip_adapter_layout.json"

DEMO_NAME = "loom-demo-tiny-sd15.safetensors"
DEMO_LORA = "loom-demo-tiny-lora.safetensors"
DEMO_CONTROLNET = "loom-demo-tiny-controlnet.safetensors"
DEMO_UPSCALER = "loom-demo-tiny-esrgan.safetensors"
DEMO_CLIP_VISION = "loom-demo-tiny-clip-vision.safetensors"
DEMO_IP_ADAPTER = "loom-demo-tiny-ip-adapter.safetensors"
LORA_RANK = 4

Layout = dict[str, list[int]]

# Layers of the demo checkpoint a kohya LoRA patches: attention and feed-forward of the UNet's transformers, and the
# text encoder's attention and MLP (what kohya's trainer targets).
_LORA_TARGETS = {
    "model.diffusion_model.": (
        "lora_unet_",
        re.compile(
            r"(.*\.transformer_blocks\.\d+\.(attn[12]\.to_(q|k|v|out\.0)|ff\.net\.(0\.proj|2))|.*\.proj_(in|out))"
        ),
    ),
    "cond_stage_model.transformer.": (
        "lora_te_",
        re.compile(r"text_model\.encoder\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])"),
    ),
}


def read_layout(path: Path) -> Layout:
    return json.loads(Path(path).read_text())


def checkpoint_layout() -> Layout:
    return read_layout(LAYOUT_FILE)


def lora_layout(checkpoint: Mapping[str, list[int]] | None = None, rank: int = LORA_RANK) -> Layout:
    """A kohya-format LoRA of the demo checkpoint: `lora_unet_<LDM name>` / `lora_te_<CLIP name>` modules, each with
    `lora_down` [rank, in, (k, k)], `lora_up` [out, rank, (1, 1)] and a scalar `alpha`."""
    out: Layout = {}
    for key, shape in sorted((checkpoint or checkpoint_layout()).items()):
        for prefix, (lora_prefix, pattern) in _LORA_TARGETS.items():
            name = key.removeprefix(prefix).removesuffix(".weight")
            if not key.startswith(prefix) or not key.endswith(".weight") or not pattern.fullmatch(name):
                continue
            stem = lora_prefix + name.replace(".", "_")
            kernel = shape[2:]
            out[f"{stem}.lora_down.weight"] = [rank, shape[1], *kernel]
            out[f"{stem}.lora_up.weight"] = [shape[0], rank, *([1] * len(kernel))]
            out[f"{stem}.alpha"] = []
    return out


def layout_tensors(layout: Mapping[str, list[int]], seed: int = 0) -> dict:
    """Deterministic weights for a layout: Gaussians scaled by 1/sqrt(fan-in), norms near 1, LoRA alphas = rank."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in layout.items():
        if key.endswith(".alpha"):
            out[key] = np.array(LORA_RANK, dtype=np.float32)
            continue
        noise = rng.standard_normal(shape, dtype=np.float32)
        if len(shape) >= 2:
            out[key] = noise / np.float32(math.sqrt(math.prod(shape[1:])))
        elif "norm" in key and key.endswith("weight"):
            out[key] = 1 + np.float32(0.02) * noise
        else:
            out[key] = np.float32(0.02) * noise
    return out


def demo_tensors(seed: int = 0) -> dict:
    """The demo checkpoint's tensors."""
    return layout_tensors(checkpoint_layout(), seed)


@dataclass(frozen=True)
class DemoModel:
    """One demo file: the model folder it goes in, its name, its tensor table and its seed."""

    folder: str
    name: str
    layout: Callable[[], Layout]
    seed: int
    note: str


DEMO_MODELS: tuple[DemoModel, ...] = (
    DemoModel("checkpoints", DEMO_NAME, checkpoint_layout, 0, "tiny random-weight demo; its images are noise"),
    DemoModel("loras", DEMO_LORA, lora_layout, 1, "tiny random-weight kohya LoRA for the demo checkpoint"),
    DemoModel(
        "controlnet",
        DEMO_CONTROLNET,
        lambda: read_layout(CONTROLNET_LAYOUT_FILE),
        2,
        "tiny random-weight ControlNet for the demo checkpoint",
    ),
    DemoModel(
        "upscale_models", DEMO_UPSCALER, lambda: read_layout(UPSCALER_LAYOUT_FILE), 3, "tiny random-weight x4 ESRGAN"
    ),
    DemoModel(
        "clip_vision",
        DEMO_CLIP_VISION,
        lambda: read_layout(CLIP_VISION_LAYOUT_FILE),
        4,
        "tiny random-weight CLIP vision encoder (transformers layout)",
    ),
    DemoModel(
        "ipadapter",
        DEMO_IP_ADAPTER,
        lambda: read_layout(IP_ADAPTER_LAYOUT_FILE),
        5,
        "tiny random-weight IP-Adapter (base variant) for the demo checkpoint and CLIP vision encoder",
    ),
)
# Model folder -> the demo file standing in for any model of that folder.
DEMO_FILES: dict[str, str] = {m.folder: m.name for m in DEMO_MODELS}


def write_demo_model(model: DemoModel, folder: Path) -> Path:
    """Write one demo file atomically (a reader never sees half a file)."""
    from safetensors.numpy import save_file

    path = Path(folder) / model.name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(layout_tensors(model.layout(), model.seed), str(tmp), metadata={"loom": model.note})
    tmp.replace(path)
    return path


def write_demo_checkpoint(checkpoints_dir: Path, seed: int = 0) -> Path:
    return write_demo_model(replace(DEMO_MODELS[0], seed=seed), checkpoints_dir)


def ensure_demo_models(folders: Mapping[str, tuple[Path, Iterable[str]]], *, always: bool = False) -> list[Path]:
    """Write the demo files that are due and return their paths. `folders`: model folder -> (the directory to write
    in, the models the folder lists).

    The checkpoint is due when its folder lists no model at all. The stand-ins accompany it: each is due when the
    demo checkpoint is there and the stand-in's folder is empty, so that a machine with real models gets no demo
    files beside them. With `always` (`--demo-models`), every demo file missing from its folder is due."""
    written = []
    demo_present = False
    for model in DEMO_MODELS:
        if model.folder not in folders:
            continue
        directory, existing = folders[model.folder]
        names = list(existing)
        if model.folder == "checkpoints":
            demo_present = not names or model.name in names
        due = not names and (model.folder == "checkpoints" or demo_present)
        if due or (always and model.name not in names):
            written.append(write_demo_model(model, directory))
    return written
