"""unCLIP (SD 2.1 unCLIP checkpoints): the UNet takes a CLIP image embedding as its class label.

The checkpoint holds, besides an SD 2.x model, the CLIP vision encoder it was trained with (`embedder.*`) and a
noise augmentor (`noise_augmentor.*`: a diffusion schedule and the image embeddings' mean and std). Conditioning on
an image noises its embedding to a chosen level of that schedule (so the model can take liberties with it) and
appends a sinusoidal embedding of the level; that vector, scaled by the strength, goes through the UNet's class
embedding (diffusers' `class_embed_type="projection"`, the LDM `label_emb`) and is added to the timestep
embedding. Rows without an image get a zero label, as the model saw in training when the embedding was dropped.

The augmentation noise is drawn from the sampler's seed, as the reference does (the seed minus 10, a freshly seeded
CPU generator for each image), so a seed gives the same image and another seed another augmentation. Level 0 is no
noise at all (the reference still mixes in the schedule's first step, a few thousandths of the noise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from diffusion.checkpoint import CheckpointError, TensorFile
from diffusion.clip_vision import CLIPVisionOutput
from diffusion.noise import seeded_generator

AUGMENTOR_PREFIX = "noise_augmentor."
# Several images are summed, and the sum noised once more at this level (of 0..1) into one label.
MERGE_NOISE = 0.05
# The augmentation noise's seed is the sampler's seed minus this (the reference's offset).
SEED_OFFSET = 10


@dataclass(frozen=True)
class UnclipImage:
    """One unCLIPConditioning: an encoding (every image of its batch counts), its strength and noise level 0..1."""

    output: CLIPVisionOutput
    strength: float
    noise_augmentation: float


def level_embedding(level: int, dim: int) -> torch.Tensor:
    """The LDM sinusoidal timestep embedding of one noise level: cosines, then sines, over geometric frequencies
    from 1 down to 1/10000. [1, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = float(level) * freqs
    embedding = torch.cat([torch.cos(args), torch.sin(args)])
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros(1)])
    return embedding[None]


@dataclass(frozen=True, eq=False)
class NoiseAugmentor:
    """The checkpoint's noise augmentor: cumulative alphas of its schedule and the embeddings' statistics."""

    alphas_cumprod: torch.Tensor  # [levels]
    mean: torch.Tensor  # [1, dim]
    std: torch.Tensor  # [1, dim]

    @property
    def dim(self) -> int:
        return int(self.mean.shape[-1])

    @property
    def label_dim(self) -> int:
        return 2 * self.dim

    def level(self, amount: float) -> int:
        """A noise amount 0..1 as a level of the schedule."""
        return round((len(self.alphas_cumprod) - 1) * min(max(amount, 0.0), 1.0))

    def augment(self, embeds: torch.Tensor, amount: float, seed: int) -> torch.Tensor:
        """[n, dim] embeddings -> [n, 2 dim]: noised to `amount` in normalised space with noise drawn from `seed`
        (the sampler's seed), then the level's embedding. Level 0 leaves the embeddings as they are."""
        level = self.level(amount)
        noised = embeds.float()
        if level > 0:
            alpha = self.alphas_cumprod[level]
            normalised = (noised - self.mean) / self.std
            noise = torch.randn(normalised.shape, generator=seeded_generator(seed - SEED_OFFSET))
            noised = (alpha.sqrt() * normalised + (1 - alpha).sqrt() * noise) * self.std + self.mean
        level_emb = level_embedding(level, self.dim).expand(embeds.shape[0], -1)
        return torch.cat([noised, level_emb], dim=1)

    def label(self, images: Sequence[UnclipImage], seed: int = 0) -> torch.Tensor:
        """The class label [1, 2 dim] of one conditioning entry: zeros without images; one image's augmented
        embedding times its strength; several images summed and noised once more (MERGE_NOISE) into one. `seed`:
        the sampler's."""
        if not images:
            return torch.zeros(1, self.label_dim)
        parts = []
        for image in images:
            embeds = image.output.image_embeds
            if embeds.shape[-1] != self.dim:
                raise ValueError(
                    f"clip_vision_output: image embeddings are {embeds.shape[-1]} wide, this unCLIP model takes "
                    f"{self.dim} (use the CLIP vision model of its unCLIPCheckpointLoader)"
                )
            parts.extend(self.augment(e[None], image.noise_augmentation, seed) * image.strength for e in embeds)
        if len(parts) == 1:
            return parts[0]
        summed = torch.stack(parts).sum(0)
        return self.augment(summed[:, : self.dim], MERGE_NOISE, seed)

    def class_labels(self, entries: Sequence[Mapping[str, object]], batch: int, seed: int = 0) -> torch.Tensor:
        """Class labels for a batched UNet call: `batch` rows per conditioning entry, in order; `seed`: the
        sampler's, which seeds the augmentation noise."""
        labels = [
            self.label(list(opts.get("unclip_conditioning") or ()), seed).expand(batch, -1)  # type: ignore[call-overload]
            for opts in entries
        ]
        return torch.cat(labels)


def read_augmentor(tensors: Mapping[str, torch.Tensor], label_dim: int, name: str) -> NoiseAugmentor:
    """The noise augmentor of an unCLIP checkpoint (`noise_augmentor.alphas_cumprod` or `.betas`, `.data_mean`,
    `.data_std`); `label_dim` is the UNet's class-embedding input width (twice the embedding width)."""
    keys = set(tensors.shapes) if isinstance(tensors, TensorFile) else set(tensors)
    p = AUGMENTOR_PREFIX
    if f"{p}alphas_cumprod" in keys:
        alphas = tensors[f"{p}alphas_cumprod"].double()
    elif f"{p}betas" in keys:
        alphas = torch.cumprod(1 - tensors[f"{p}betas"].double(), dim=0)
    else:
        raise CheckpointError(f"{name}: an unCLIP UNet without its noise augmentor ({p}alphas_cumprod / {p}betas)")
    dim = label_dim // 2
    mean = tensors[f"{p}data_mean"].float().reshape(1, -1) if f"{p}data_mean" in keys else torch.zeros(1, dim)
    std = tensors[f"{p}data_std"].float().reshape(1, -1) if f"{p}data_std" in keys else torch.ones(1, dim)
    if mean.shape[-1] != dim or std.shape[-1] != dim:
        raise CheckpointError(f"{name}: noise augmentor statistics are {mean.shape[-1]} wide, the UNet takes {dim}")
    return NoiseAugmentor(alphas.float(), mean, std)
