"""Latent formats: models trained on VAE latents normalised otherwise than by the VAE's one scaling factor.

Loom's LATENT values are the VAE's latents times its scaling factor (diffusion.vae). A model trained on per-channel
normalised latents (Playground v2.5: (z - mean) * 0.5 / std per channel, from its published VAE config) samples in
its own space: the sampler maps the latent in before and the result out after (DiffusionModel.latent_format).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# playgroundai/playground-v2.5-1024px-aesthetic, vae/config.json: latents_mean, latents_std, scaling_factor
PLAYGROUND_MEAN = (-1.6574, 1.886, -1.383, 2.5155)
PLAYGROUND_STD = (8.4927, 5.9022, 6.5498, 5.2299)
PLAYGROUND_SCALE = 0.5


@dataclass(frozen=True)
class ChannelNormalised:
    """model latent = (z - mean) * scale / std per channel, z = Loom's latent / the VAE's scaling factor."""

    vae_scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if like.shape[1] != len(self.mean):
            raise ValueError(f"latent_image: {like.shape[1]} channels, the latent format has {len(self.mean)}")
        shape = (1, -1, *([1] * (like.ndim - 2)))
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(shape)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device).view(shape)
        return mean, std

    def to_model(self, latent: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(latent)
        return (latent / self.vae_scale - mean) * self.scale / std

    def from_model(self, latent: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(latent)
        return (latent * std / self.scale + mean) * self.vae_scale


def playground_v25(vae_scale: float) -> ChannelNormalised:
    return ChannelNormalised(vae_scale, PLAYGROUND_MEAN, PLAYGROUND_STD, PLAYGROUND_SCALE)
