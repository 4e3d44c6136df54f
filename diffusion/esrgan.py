"""ESRGAN / Real-ESRGAN (RRDBNet) upscale models, detected from the state dict's shapes, and tiled upscaling.

`spandrel` would detect many architectures, but `import spandrel` imports torchvision (for two of its
architectures), which Loom must not install; RRDBNet covers the upscale models most workflows use. Both key layouts
are read: BasicSR's (`conv_first`, `body.N.rdb1.conv1`, `conv_up1`, ...) and the original ESRGAN's (`model.0`,
`model.1.sub.N.RDB1.conv1.0`, ...). Real-ESRGAN's x2/x1 models fold pixels into channels first (pixel unshuffle),
which shows as more input channels than output channels.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class UpscaleModelError(ValueError):
    """A file that is not an upscale model Loom can run; the message says what was found."""


class DenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block input and every earlier output; residual scaled by 0.2."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        for i in range(5):
            out = features if i == 4 else growth
            setattr(self, f"conv{i + 1}", nn.Conv2d(features + i * growth, out, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for i in range(1, 5):
            outs.append(F.leaky_relu(getattr(self, f"conv{i}")(torch.cat(outs, 1)), 0.2))
        return x + 0.2 * self.conv5(torch.cat(outs, 1))


class RRDB(nn.Module):
    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (DenseBlock(features, growth) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


@dataclass(frozen=True)
class RRDBArch:
    in_channels: int
    out_channels: int
    features: int
    growth: int
    blocks: int
    upsamplers: int

    @property
    def unshuffle(self) -> int:
        """Pixel-unshuffle factor: input channels beyond the output's are folded pixels (Real-ESRGAN x2, x1)."""
        return round((self.in_channels / self.out_channels) ** 0.5)

    @property
    def scale(self) -> int:
        return 2**self.upsamplers // self.unshuffle


class RRDBNet(nn.Module):
    def __init__(self, arch: RRDBArch) -> None:
        super().__init__()
        self.arch = arch
        self.conv_first = nn.Conv2d(arch.in_channels, arch.features, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(arch.features, arch.growth) for _ in range(arch.blocks)))
        self.conv_body = nn.Conv2d(arch.features, arch.features, 3, padding=1)
        for i in range(arch.upsamplers):
            setattr(self, f"conv_up{i + 1}", nn.Conv2d(arch.features, arch.features, 3, padding=1))
        self.conv_hr = nn.Conv2d(arch.features, arch.features, 3, padding=1)
        self.conv_last = nn.Conv2d(arch.features, arch.out_channels, 3, padding=1)

    @property
    def scale(self) -> int:
        return self.arch.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.arch.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.arch.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for i in range(self.arch.upsamplers):
            up = F.interpolate(feat, scale_factor=2, mode="nearest")
            feat = F.leaky_relu(getattr(self, f"conv_up{i + 1}")(up), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


def _from_original_layout(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original ESRGAN names (`model.N...`) -> BasicSR names."""
    out: dict[str, torch.Tensor] = {}
    body = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
    trunk = [int(m.group(1)) for k in sd if (m := re.match(r"model\.1\.sub\.(\d+)\.weight$", k))]
    tail = sorted({int(m.group(1)) for k in sd if (m := re.match(r"model\.(\d+)\.weight$", k)) and m.group(1) != "0"})
    if not trunk or len(tail) < 2:
        raise UpscaleModelError("an ESRGAN-style file, but its trunk or output convs are missing")
    names = [f"conv_up{i + 1}" for i in range(len(tail) - 2)] + ["conv_hr", "conv_last"]
    renames = {f"model.{idx}": name for idx, name in zip(tail, names, strict=True)}
    renames["model.0"] = "conv_first"
    renames[f"model.1.sub.{trunk[0]}"] = "conv_body"
    for key, tensor in sd.items():
        if m := body.match(key):
            out[f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"] = tensor
            continue
        stem, _, leaf = key.rpartition(".")
        if stem in renames:
            out[f"{renames[stem]}.{leaf}"] = tensor
    return out


def detect_rrdb(sd: Mapping[str, torch.Tensor]) -> RRDBArch:
    if "conv_first.weight" not in sd or "body.0.rdb1.conv1.weight" not in sd:
        top = sorted({k.split(".")[0] for k in sd})[:8]
        raise UpscaleModelError(f"not an ESRGAN/RRDBNet upscale model (top-level names: {top})")
    first, last = sd["conv_first.weight"], sd["conv_last.weight"]
    arch = RRDBArch(
        in_channels=first.shape[1],
        out_channels=last.shape[0],
        features=first.shape[0],
        growth=sd["body.0.rdb1.conv1.weight"].shape[0],
        blocks=len({k.split(".")[1] for k in sd if k.startswith("body.")}),
        upsamplers=sum(1 for k in sd if re.fullmatch(r"conv_up\d+\.weight", k)),
    )
    if arch.in_channels not in (arch.out_channels, 4 * arch.out_channels, 16 * arch.out_channels):
        raise UpscaleModelError(f"unexpected channels: {arch.in_channels} in, {arch.out_channels} out")
    return arch


def load_rrdb(sd: Mapping[str, torch.Tensor]) -> RRDBNet:
    """An RRDBNet from either key layout, built on the meta device and given the tensors (no random init)."""
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    if "params_ema" in sd or "params" in sd:
        raise UpscaleModelError("nested BasicSR checkpoint: expected its 'params_ema' dict to be unwrapped")
    if "model.0.weight" in sd:
        sd = _from_original_layout(sd)
    arch = detect_rrdb(sd)
    with torch.device("meta"):
        model = RRDBNet(arch)
    model.load_state_dict(sd, assign=True, strict=True)
    return model.float().eval().requires_grad_(False)


def upscale_tiled(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    scale: int,
    tile: int = 512,
    pad: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Run `model` over [B, C, H, W] in tiles of `tile` pixels, each with `pad` pixels of real context around it
    (cropped off after), so memory stays bounded and tile seams match the untiled result once `pad` covers the
    model's receptive field."""
    b, h, w = images.shape[0], images.shape[2], images.shape[3]
    out: torch.Tensor | None = None
    ys, xs = range(0, h, tile), range(0, w, tile)
    total, done = len(ys) * len(xs), 0
    for y in ys:
        for x in xs:
            y0, x0 = max(0, y - pad), max(0, x - pad)
            y1, x1 = min(h, y + tile + pad), min(w, x + tile + pad)
            result = model(images[:, :, y0:y1, x0:x1])
            if out is None:
                out = result.new_zeros(b, result.shape[1], h * scale, w * scale)
            th, tw = min(tile, h - y), min(tile, w - x)
            top, left = (y - y0) * scale, (x - x0) * scale
            out[:, :, y * scale : (y + th) * scale, x * scale : (x + tw) * scale] = result[
                :, :, top : top + th * scale, left : left + tw * scale
            ]
            done += 1
            if progress is not None:
                progress(done, total)
    assert out is not None
    return out
