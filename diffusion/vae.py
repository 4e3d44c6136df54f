"""The VAE socket value: pixels <-> latents, whole or in overlapping tiles for images that do not fit in memory.

Pixels are IMAGE tensors ([B, H, W, C] float in 0..1); latents are scaled by the family's factor, as samplers use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from diffusion.memory import ModelManager, module_nbytes


@dataclass(eq=False)
class VAE:
    module: nn.Module  # diffusers AutoencoderKL
    scaling_factor: float
    manager: ModelManager
    shift_factor: float = 0.0

    def loom_nbytes(self) -> int:
        return module_nbytes(self.module)

    @property
    def downscale(self) -> int:
        return 2 ** (len(self.module.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.module.config.latent_channels)

    def _prepare(self) -> tuple[torch.device, torch.dtype]:
        self.manager.load([self.module])
        return self.manager.device, self.manager.dtype

    def decode_bytes(self, latent_height: int, latent_width: int) -> int:
        """A generous estimate of the memory one image's decode takes: the decoder's widest full-resolution stage
        (the last upsampling, `block_out_channels[1]` channels) holds about three such tensors at once."""
        f = self.downscale
        channels = self.module.config.block_out_channels
        widest = channels[1] if len(channels) > 1 else channels[0]
        size = torch.empty((), dtype=self.manager.dtype).element_size()
        return 3 * widest * latent_height * f * latent_width * f * size

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Whole images, or in tiles when one image's decode would not fit in the memory left (results differ
        slightly at tile seams, so tiles are used only when needed)."""
        if self.decode_bytes(*latents.shape[-2:]) > self.manager.free_bytes():
            return self.decode_tiled(latents)
        device, dtype = self._prepare()
        out = []
        for z in latents.split(1):
            z = z.to(device, dtype) / self.scaling_factor + self.shift_factor
            out.append(self.module.decode(z).sample.float().cpu())
        return to_image(torch.cat(out))

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        device, dtype = self._prepare()
        pixels = from_image(crop_to_multiple(images, self.downscale))
        out = []
        for x in pixels.split(1):
            dist = self.module.encode(x.to(device, dtype)).latent_dist
            out.append(((dist.mean - self.shift_factor) * self.scaling_factor).float().cpu())
        return torch.cat(out)

    @torch.no_grad()
    def decode_tiled(self, latents: torch.Tensor, tile: int = 64, overlap: int = 16) -> torch.Tensor:
        """Decode in latent tiles of `tile` with `overlap`, blended with linear ramps to hide the seams."""
        device, dtype = self._prepare()
        f = self.downscale

        def run(z: torch.Tensor) -> torch.Tensor:
            return self.module.decode(z.to(device, dtype) / self.scaling_factor + self.shift_factor).sample.float()

        return to_image(tiled(latents, run, tile, overlap, scale=f, out_channels=3).cpu())

    @torch.no_grad()
    def encode_tiled(self, images: torch.Tensor, tile: int = 512, overlap: int = 64) -> torch.Tensor:
        device, dtype = self._prepare()
        f = self.downscale
        pixels = from_image(crop_to_multiple(images, f))

        def run(x: torch.Tensor) -> torch.Tensor:
            dist = self.module.encode(x.to(device, dtype)).latent_dist
            return ((dist.mean - self.shift_factor) * self.scaling_factor).float()

        return tiled(pixels, run, tile, overlap, scale=1 / f, out_channels=self.latent_channels).cpu()


def to_image(pixels: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] in -1..1 -> IMAGE [B, H, W, C] in 0..1."""
    return ((pixels + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).contiguous()


def from_image(images: torch.Tensor) -> torch.Tensor:
    """IMAGE [B, H, W, C] in 0..1 -> [B, 3, H, W] in -1..1 (an alpha channel is dropped)."""
    return images[..., :3].permute(0, 3, 1, 2).float() * 2 - 1


def crop_to_multiple(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """Centre-crop IMAGE height and width down to multiples of the VAE's downscale factor."""
    h, w = images.shape[1], images.shape[2]
    nh, nw = h // multiple * multiple, w // multiple * multiple
    if nh == 0 or nw == 0:
        raise ValueError(f"image {w}x{h} is smaller than the VAE's {multiple}-pixel block")
    top, left = (h - nh) // 2, (w - nw) // 2
    return images[:, top : top + nh, left : left + nw]


def _ramp(n: int, overlap: int, start: bool, end: bool) -> torch.Tensor:
    w = torch.ones(n)
    ramp = torch.linspace(0, 1, overlap + 2)[1:-1] if overlap > 0 else torch.ones(0)
    if start and overlap:
        w[:overlap] = ramp
    if end and overlap:
        w[n - overlap :] = ramp.flip(0)
    return w


def tiled(
    x: torch.Tensor,
    run: Callable[[torch.Tensor], torch.Tensor],
    tile: int,
    overlap: int,
    scale: float,
    out_channels: int,
) -> torch.Tensor:
    """Apply `run` to overlapping tiles of x [B, C, H, W] and blend; `scale` is output size / input size."""
    b, _c, h, w = x.shape
    tile = max(tile, 8)
    overlap = max(0, min(overlap, tile // 2))
    stride = tile - overlap
    out = torch.zeros(b, out_channels, round(h * scale), round(w * scale))
    weight = torch.zeros(1, 1, out.shape[2], out.shape[3])
    ys = list(range(0, max(h - overlap, 1), stride))
    xs = list(range(0, max(w - overlap, 1), stride))
    for y in ys:
        for x0 in xs:
            y1, x1 = min(y + tile, h), min(x0 + tile, w)
            ya, xa = max(0, y1 - tile), max(0, x1 - tile)
            piece = run(x[:, :, ya:y1, xa:x1]).cpu()
            oy, ox = round(ya * scale), round(xa * scale)
            ph, pw = piece.shape[2], piece.shape[3]
            ov = round(overlap * scale)
            wy = _ramp(ph, ov, ya > 0, y1 < h)
            wx = _ramp(pw, ov, xa > 0, x1 < w)
            mask = (wy[:, None] * wx[None, :])[None, None]
            out[:, :, oy : oy + ph, ox : ox + pw] += piece * mask
            weight[:, :, oy : oy + ph, ox : ox + pw] += mask
    return out / weight.clamp(min=1e-8)
