"""UpscaleModelLoader and ImageUpscaleWithModel: ESRGAN-family upscalers run in tiles so large images fit."""

from __future__ import annotations

from typing import Any

from engine.context import NodeContext
from engine.native import Combo, Out, Socket, node
from nodes.shared import file_input, model_file, model_files

TILE = 512
MIN_TILE = 64


@node(
    category="loaders",
    outputs=[Out("UPSCALE_MODEL")],
    display_name="Load Upscale Model",
    fingerprint=file_input("upscale_models", "model_name"),
)
def UpscaleModelLoader(model_name: str = Combo(model_files("upscale_models")), *, ctx: NodeContext) -> tuple:
    """Load an ESRGAN / Real-ESRGAN (RRDBNet) upscale model; the architecture is read from the tensor shapes."""
    from diffusion.checkpoint import read_tensors
    from diffusion.esrgan import load_rrdb

    tensors = read_tensors(model_file(ctx.env, "upscale_models", model_name, "model_name"))
    for nested in ("params_ema", "params"):  # BasicSR training checkpoints wrap the weights
        if nested in tensors or any(k.startswith(nested + ".") for k in tensors):
            tensors = {k.removeprefix(nested + "."): v for k, v in tensors.items() if k.startswith(nested + ".")}
            break
    return (load_rrdb(tensors),)


def upscale_image(model: Any, image: Any, tile: int, ctx: NodeContext) -> Any:
    """IMAGE [B, H, W, C] -> IMAGE upscaled by the model's factor, halving the tile on out-of-memory errors."""
    import torch
    import torch.nn.functional as F

    from diffusion.esrgan import upscale_tiled

    param = next(model.parameters())
    x = image.movedim(-1, 1).to(param.device, param.dtype)
    h, w = x.shape[-2:]
    fold = model.arch.unshuffle
    x = F.pad(x, (0, -w % fold, 0, -h % fold), mode="replicate") if (h % fold or w % fold) else x

    while True:
        try:
            with torch.inference_mode():
                out = upscale_tiled(model, x, model.scale, tile=max(tile, fold), progress=ctx.progress)
            break
        except torch.OutOfMemoryError:
            if tile <= MIN_TILE:
                raise
            tile //= 2
    s = model.scale
    return out[:, :, : h * s, : w * s].clamp(0, 1).movedim(1, -1).float().cpu()


@node(category="image/upscaling", outputs=[Out("IMAGE")], display_name="Upscale Image (using Model)")
def ImageUpscaleWithModel(
    upscale_model: Any = Socket("UPSCALE_MODEL"), image: Any = Socket("IMAGE"), *, ctx: NodeContext
) -> tuple:
    """Upscale an image with an upscale model, tile by tile."""
    return (upscale_image(upscale_model, image, TILE, ctx),)
