"""UNet patches: model options that change features inside the UNet while it runs, attached as forward hooks for
one call (diffusion.model.DiffusionModel.unet_forward) so the shared module itself never changes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def fourier_filter(x: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
    """Scale the lowest spatial frequencies (a square of half-width `threshold` around the centre of the shifted
    spectrum) by `scale`."""
    dtype = x.dtype
    freq = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    h, w = freq.shape[-2:]
    mask = torch.ones((h, w), device=x.device)
    mask[max(0, h // 2 - threshold) : h // 2 + threshold, max(0, w // 2 - threshold) : w // 2 + threshold] = scale
    freq = torch.fft.ifftshift(freq * mask, dim=(-2, -1))
    return torch.fft.ifftn(freq, dim=(-2, -1)).real.to(dtype)


def decoder_resnets(unet: nn.Module) -> Iterator[tuple[nn.Module, int]]:
    """Each decoder resnet with the channel count of the backbone part of its input: the resnet takes the
    backbone features and the encoder's skip features concatenated, backbone first."""
    previous = int(unet.config.block_out_channels[-1])
    for block in unet.up_blocks:
        out = int(block.resnets[0].out_channels)
        for j, resnet in enumerate(block.resnets):
            yield resnet, previous if j == 0 else out
        previous = out


@dataclass(frozen=True)
class FreeU:
    """Si et al. 2023, "FreeU: Free Lunch in Diffusion U-Net": in the decoder stages with 4x and 2x the base
    channel count, amplify half the backbone channels by b1/b2 and damp the low frequencies of the skip features
    by s1/s2. `adaptive` is the authors' second version: the amplification follows each position's mean backbone
    activation (normalised to 0..1 per image), 1 where it is lowest and b where it is highest."""

    b1: float
    b2: float
    s1: float
    s2: float
    adaptive: bool = False

    def attach(self, unet: nn.Module) -> list[RemovableHandle]:
        base = int(unet.config.block_out_channels[0])
        factors = {base * 4: (self.b1, self.s1), base * 2: (self.b2, self.s2)}
        handles = []
        for resnet, backbone in decoder_resnets(unet):
            if backbone in factors:
                handles.append(resnet.register_forward_pre_hook(self._hook(backbone, *factors[backbone])))
        return handles

    def _hook(self, backbone: int, b: float, s: float) -> Any:
        def hook(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
            features, *rest = args
            h, skip = features[:, :backbone], features[:, backbone:]
            half = backbone // 2
            if self.adaptive:
                mean = h.mean(1, keepdim=True)
                low = mean.amin(dim=(-2, -1), keepdim=True)
                high = mean.amax(dim=(-2, -1), keepdim=True)
                weight = (mean - low) / (high - low).clamp_min(1e-12)
                h = torch.cat((h[:, :half] * ((b - 1) * weight + 1), h[:, half:]), dim=1)
            else:
                h = torch.cat((h[:, :half] * b, h[:, half:]), dim=1)
            return (torch.cat((h, fourier_filter(skip, 1, s)), dim=1), *rest)

        return hook


def _pass_through(_module: nn.Module, _args: Any, kwargs: dict[str, Any], _output: Any) -> tuple[Any, Any]:
    return kwargs["encoder_hidden_states"], kwargs["hidden_states"]


@dataclass(frozen=True)
class SkipBlocks:
    """Transformer blocks that hand their inputs on unchanged (skip-layer guidance's degraded prediction):
    `double` indexes the joint (image + text) blocks of FLUX and SD3, `single` FLUX's single-stream blocks.
    Indices past a model's last block skip nothing, as in the reference."""

    double: tuple[int, ...]
    single: tuple[int, ...] = ()

    def attach(self, unet: nn.Module) -> list[RemovableHandle]:
        handles = []
        for attr, indices in (("transformer_blocks", self.double), ("single_transformer_blocks", self.single)):
            blocks = getattr(unet, attr, ())
            for i in indices:
                if i < len(blocks):
                    handles.append(blocks[i].register_forward_hook(_pass_through, with_kwargs=True))
        return handles


def attach_key_bias(unet: nn.Module, bias: torch.Tensor) -> list[RemovableHandle]:
    """Add `bias` [rows, 1, keys] to the logits of every cross-attention layer (as its attention mask) for one
    call: per prompt token, how much more or less the image attends to it (style models' attn_bias)."""

    def hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        hidden = args[0] if args else kwargs["hidden_states"]
        return args, {**kwargs, "attention_mask": bias.to(hidden.device, hidden.dtype)}

    return [
        module.register_forward_pre_hook(hook, with_kwargs=True)
        for name, module in unet.named_modules()
        if name.endswith("attn2")
    ]
