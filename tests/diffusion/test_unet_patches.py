"""FreeU's pieces on small tensors and a tiny UNet."""

from __future__ import annotations

import torch

from diffusion.tiny import build_tiny, tiny_spec
from diffusion.unet_patches import FreeU, decoder_resnets, fourier_filter


def test_fourier_filter_scales_only_the_low_frequencies() -> None:
    x = torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(fourier_filter(x, 1, 1.0), x, atol=1e-5)
    flat = torch.full((1, 1, 8, 8), 3.0)
    assert torch.allclose(fourier_filter(flat, 1, 0.0), torch.zeros_like(flat), atol=1e-5)  # the mean is removed
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 1.0 - 0.5
    assert torch.allclose(fourier_filter(checker[None, None], 1, 0.0), checker, atol=1e-5)  # high frequency kept


def test_decoder_resnets_and_hooks_on_a_tiny_unet() -> None:
    unet = build_tiny(tiny_spec("sd1")).unet  # block channels (32, 64)
    backbones = [channels for _resnet, channels in decoder_resnets(unet)]
    assert backbones == [64, 64, 64, 32]
    handles = FreeU(1.1, 1.2, 0.9, 0.2).attach(unet)
    assert len(handles) == 3  # the 64-channel (2x base) stages only; no 4x stage in this UNet
    for handle in handles:
        handle.remove()
    assert not any(m._forward_pre_hooks for m in unet.modules())


def test_freeu_hook_scales_half_the_backbone() -> None:
    unet = build_tiny(tiny_spec("sd1")).unet
    resnet, backbone = next(iter(decoder_resnets(unet)))
    seen: list[torch.Tensor] = []
    handle = FreeU(1.0, 2.0, 1.0, 1.0).attach(unet)[0]
    probe = resnet.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))  # runs after FreeU's
    features = torch.ones(1, resnet.in_channels, 4, 4)
    resnet(features, torch.zeros(1, unet.config.block_out_channels[0] * 4))
    handle.remove()
    probe.remove()
    [patched] = seen
    assert torch.all(patched[:, : backbone // 2] == 2) and torch.all(patched[:, backbone // 2 :] == 1)
