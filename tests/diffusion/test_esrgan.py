import re

import pytest
import torch

from diffusion.esrgan import RRDBArch, RRDBNet, UpscaleModelError, load_rrdb, upscale_tiled


def _random(arch: RRDBArch, seed: int = 0) -> RRDBNet:
    torch.manual_seed(seed)
    net = RRDBNet(arch)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    return net.eval()


def _to_original_layout(sd: dict[str, torch.Tensor], upsamplers: int) -> dict[str, torch.Tensor]:
    """The inverse of the loader's renaming: BasicSR names -> original ESRGAN `model.N` names."""
    blocks = len({k.split(".")[1] for k in sd if k.startswith("body.")})
    tail = {f"conv_up{i + 1}": 3 + 3 * i for i in range(upsamplers)}
    tail["conv_hr"] = 3 + 3 * upsamplers
    tail["conv_last"] = tail["conv_hr"] + 2
    out = {}
    for key, tensor in sd.items():
        if m := re.match(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.(\w+)$", key):
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{m[4]}"] = tensor
            continue
        stem, _, leaf = key.rpartition(".")
        name = {"conv_first": "model.0", "conv_body": f"model.1.sub.{blocks}"}.get(stem) or f"model.{tail[stem]}"
        out[f"{name}.{leaf}"] = tensor
    return out


ARCH4 = RRDBArch(in_channels=3, out_channels=3, features=8, growth=4, blocks=2, upsamplers=2)


def test_both_key_layouts_load_the_same_x4_model() -> None:
    net = _random(ARCH4)
    x = torch.rand(1, 3, 12, 10)
    want = net(x)
    assert want.shape == (1, 3, 48, 40)
    basicsr = load_rrdb({k: v.clone() for k, v in net.state_dict().items()})
    original = load_rrdb(_to_original_layout(net.state_dict(), 2))
    assert basicsr.scale == original.scale == 4
    assert original.arch == ARCH4
    with torch.no_grad():
        assert torch.equal(basicsr(x), want)
        assert torch.equal(original(x), want)


def test_pixel_unshuffle_models_are_x2_and_x1() -> None:
    for in_channels, scale in ((12, 2), (48, 1)):
        arch = RRDBArch(in_channels, 3, features=8, growth=4, blocks=1, upsamplers=2)
        loaded = load_rrdb(dict(_random(arch).state_dict()))
        assert loaded.scale == scale
        assert loaded(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8 * scale, 8 * scale)


def test_tiled_equals_untiled() -> None:
    net = load_rrdb(dict(_random(RRDBArch(3, 3, features=8, growth=4, blocks=1, upsamplers=1)).state_dict()))
    image = torch.rand(2, 3, 40, 52)
    seen: list[tuple[int, int]] = []
    with torch.no_grad():
        whole = net(image)
        tiled = upscale_tiled(net, image, 2, tile=16, pad=24, progress=lambda d, t: seen.append((d, t)))
    assert tiled.shape == whole.shape == (2, 3, 80, 104)
    assert torch.allclose(tiled, whole, atol=1e-5)
    assert seen[-1] == (12, 12)


def test_not_an_upscale_model_is_a_clear_error() -> None:
    with pytest.raises(UpscaleModelError, match="not an ESRGAN"):
        load_rrdb({"encoder.weight": torch.zeros(1)})
