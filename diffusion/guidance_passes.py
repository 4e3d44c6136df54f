"""Post-guidance model options that make further model calls within a step (through GuidanceStep.predict): the
guided estimate plus a push away from a deliberately worse estimate, or a guidance rule over an extra prompt.
Without a sampler that offers further calls, or at scale 0, each returns the guided estimate unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from diffusion.attention_patches import AttentionRecorder, MidBlockIdentity, ProcessorSwap, blur_masked
from diffusion.guidance import PerpNeg
from diffusion.model import GuidanceStep


@dataclass(frozen=True)
class PerturbedAttentionGuidance:
    """Ahn et al. 2024, "Self-Rectifying Diffusion Sampling with Perturbed-Attention Guidance": predict the
    positive once more with the middle block's self-attention maps replaced by the identity, and move the guided
    estimate away from that structure-less estimate by `scale`."""

    scale: float

    def __call__(self, step: GuidanceStep) -> torch.Tensor:
        if self.scale == 0 or step.predict is None:
            return step.guided
        perturbed = step.predict(step.x, 0, MidBlockIdentity())
        if perturbed is None:
            return step.guided
        return step.guided + (step.cond - perturbed) * self.scale


@dataclass(eq=False)
class SelfAttentionGuidance:
    """Hong et al. 2023, "Improving Sample Quality of Diffusion Models Using Self-Attention Guidance": blur the
    negative's x0 estimate where the middle block's self-attention concentrates, re-noise it with the step's
    noise, predict the negative on it, and move the guided estimate away from that by `scale`.

    It is both the UNet patch that records the attention (`attach`) and the post-guidance function; use it as
    both on one model. Latents of 4 positions or fewer a side are left alone (too small to blur)."""

    scale: float
    blur_sigma: float
    recorder: AttentionRecorder = field(default_factory=AttentionRecorder)

    def attach(self, unet: nn.Module) -> list[ProcessorSwap]:
        return self.recorder.attach(unet)

    def __call__(self, step: GuidanceStep) -> torch.Tensor:
        if self.scale == 0 or step.predict is None or min(step.x.shape[2:]) <= 4:
            return step.guided
        which, uncond = 1, step.uncond
        if uncond is None:  # guidance skipped the negative (cfg 1): predict it, recording its attention
            uncond = step.predict(step.x, 1)
        if uncond is None:  # no negative at all: the positive stands in
            which, uncond = 0, step.cond
        received = self.recorder.received
        if received is None:
            return step.guided
        degraded = blur_masked(uncond, received, self.blur_sigma)
        sag = step.predict(degraded + step.x - uncond, which)
        if sag is None:
            return step.guided
        return step.guided + (degraded - sag) * self.scale


@dataclass(eq=False)
class PerpNegOption:
    """Perp-Neg as a model option (the deprecated PerpNeg node): the guider's positive and negative with the
    `empty` conditioning predicted each step, combined by the Perp-Neg rule (diffusion.guidance.PerpNeg) at the
    guidance scale. Without a negative set the guided estimate stays."""

    empty: Sequence[Any]
    neg_scale: float

    def __call__(self, step: GuidanceStep) -> torch.Tensor:
        if step.predict is None:
            return step.guided
        uncond = step.uncond if step.uncond is not None else step.predict(step.x, 1)
        if uncond is None:
            return step.guided
        empty = step.predict(step.x, self.empty)
        guided, _ = PerpNeg(step.scale, self.neg_scale)([step.cond, uncond, empty])
        return guided
