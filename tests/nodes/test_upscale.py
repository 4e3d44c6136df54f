from typing import Any

import torch
from safetensors.torch import save_file

from diffusion.esrgan import RRDBArch, RRDBNet


def test_loader_and_upscale_node_with_tiling(run: Any, env: Any) -> None:
    torch.manual_seed(0)
    net = RRDBNet(RRDBArch(12, 3, features=8, growth=4, blocks=1, upsamplers=2)).eval()  # Real-ESRGAN-style x2
    folder = env.folders.model_dirs("upscale_models")[0]
    save_file({"params_ema." + k: v for k, v in net.state_dict().items()}, folder / "tiny_x2.safetensors")
    (model,) = run("UpscaleModelLoader", model_name="tiny_x2.safetensors")
    assert model.scale == 2
    image = torch.rand(1, 9, 7, 3)  # odd sizes: padded for the pixel unshuffle, cropped after
    (out,) = run("ImageUpscaleWithModel", upscale_model=model, image=image)
    assert out.shape == (1, 18, 14, 3)
    assert out.min() >= 0 and out.max() <= 1
