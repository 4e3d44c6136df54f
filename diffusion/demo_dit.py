"""The FLUX and SD3 demo files: tiny random-weight FLUX.1-dev and SD3 transformers, CLIP-L, CLIP-G, T5 (with a
small T5-style tokenizer.json beside it), 16-channel VAEs, and for FLUX Redux a SigLIP vision encoder and the Redux
model, written like the SD 1.5 demo (numpy, from bundled tensor tables) so workflows/flux.json, flux_redux.json and
sd3.json run on a fresh machine in seconds. Their images are noise."""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

from diffusion.demo import CONFIGS, DEMO_MODELS, DemoModel, write_demo_model

DIT_LAYOUT_FILE = CONFIGS / "demo_flux_layouts.json"
SD3_LAYOUT_FILE = CONFIGS / "demo_sd3_layouts.json"
REDUX_LAYOUT_FILE = CONFIGS / "demo_redux_layouts.json"
DEMO_FLUX = "loom-demo-tiny-flux-dev.safetensors"
DEMO_CLIP_L = "loom-demo-tiny-clip-l.safetensors"
DEMO_T5 = "loom-demo-tiny-t5.safetensors"
DEMO_FLUX_VAE = "loom-demo-tiny-flux-vae.safetensors"
DEMO_SD3 = "loom-demo-tiny-sd3-medium.safetensors"
DEMO_CLIP_G = "loom-demo-tiny-clip-g.safetensors"
DEMO_SD3_VAE = "loom-demo-tiny-sd3-vae.safetensors"
DEMO_SIGLIP = "loom-demo-tiny-siglip-vision.safetensors"
DEMO_REDUX = "loom-demo-tiny-flux-redux.safetensors"
T5_SPECIALS = ("<pad>", "</s>", "<unk>")


@cache
def _layouts() -> dict[str, dict[str, list[int]]]:
    return {
        k: v
        for f in (DIT_LAYOUT_FILE, SD3_LAYOUT_FILE, REDUX_LAYOUT_FILE)
        for k, v in json.loads(f.read_text()).items()
    }


def _layout(name: str) -> dict[str, list[int]]:
    return _layouts()[name]


DIT_DEMO_MODELS: tuple[DemoModel, ...] = (
    DemoModel("diffusion_models", DEMO_FLUX, lambda: _layout(DEMO_FLUX), 4, "tiny random-weight FLUX.1-dev"),
    DemoModel("text_encoders", DEMO_CLIP_L, lambda: _layout(DEMO_CLIP_L), 5, "tiny random-weight CLIP-L"),
    DemoModel("text_encoders", DEMO_T5, lambda: _layout(DEMO_T5), 6, "tiny random-weight T5 encoder"),
    DemoModel("vae", DEMO_FLUX_VAE, lambda: _layout(DEMO_FLUX_VAE), 7, "tiny random-weight 16-channel VAE"),
    DemoModel("diffusion_models", DEMO_SD3, lambda: _layout(DEMO_SD3), 8, "tiny random-weight SD3 (MMDiT)"),
    DemoModel("text_encoders", DEMO_CLIP_G, lambda: _layout(DEMO_CLIP_G), 9, "tiny random-weight CLIP-G (OpenCLIP)"),
    DemoModel("vae", DEMO_SD3_VAE, lambda: _layout(DEMO_SD3_VAE), 10, "tiny random-weight SD3 16-channel VAE"),
    DemoModel(
        "clip_vision",
        DEMO_SIGLIP,
        lambda: _layout(DEMO_SIGLIP),
        11,
        "tiny random-weight SigLIP vision encoder (42 px, 3 x 3 patches) for FLUX Redux",
    ),
    DemoModel(
        "style_models",
        DEMO_REDUX,
        lambda: _layout(DEMO_REDUX),
        12,
        "tiny random-weight FLUX Redux for the SigLIP and FLUX demo files",
    ),
)


def t5_demo_tokenizer() -> str:
    """A T5-style unigram tokenizer.json (ids 0/1/2 = pad, </s>, unk; "▁" word starts) over letters and digits,
    small enough for the demo T5's vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    pieces = [*T5_SPECIALS, "▁", *string.ascii_lowercase, *string.ascii_uppercase, *string.digits, *",.!?-'"]
    pieces += [f"▁{c}" for c in string.ascii_lowercase]
    vocab = [(p, 0.0 if p in T5_SPECIALS else -float(len(p) == 1) - 1.0) for p in pieces]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return tok.to_str()


def write_t5_tokenizer(encoder_file: Path) -> Path:
    path = encoder_file.with_name(f"{encoder_file.stem}.tokenizer.json")
    path.write_text(t5_demo_tokenizer())
    return path


def write_dit_demo_model(model: DemoModel, folder: Path) -> Path:
    path = write_demo_model(model, folder)
    if model.name == DEMO_T5:
        write_t5_tokenizer(path)
    return path


def ensure_dit_demo_models(
    folders: Mapping[str, tuple[Path, Iterable[str]]], demo_present: bool, *, always: bool = False
) -> list[Path]:
    """Like ensure_demo_models: each FLUX/SD3 demo file is due when the SD demo checkpoint is there and its folder
    listed no model but demo files, these or the SD demo's (so a machine from before a demo was added gets it too,
    and the SigLIP encoder goes beside the demo CLIP vision encoder); with `always`, whenever it is missing.
    `folders` as there."""
    written = []
    listed = {folder: list(existing) for folder, (_d, existing) in folders.items()}
    demo_names = {m.name for m in (*DEMO_MODELS, *DIT_DEMO_MODELS)}
    for model in DIT_DEMO_MODELS:
        if model.folder not in folders:
            continue
        names = listed[model.folder]
        due = demo_present and model.name not in names and set(names) <= demo_names
        if due or (always and model.name not in names):
            written.append(write_dit_demo_model(model, folders[model.folder][0]))
    return written
