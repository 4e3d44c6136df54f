"""The MODEL socket value: a diffusers UNet wrapped as a k-diffusion denoiser D(x, sigma) -> x0 estimate."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from diffusion.memory import ModelManager, module_nbytes
from diffusion.schedulers import DiscreteSchedule
from diffusion.unet_patches import attach_key_bias


@dataclass(frozen=True)
class GuidanceStep:
    """One sampling step's x0 estimates around guidance, as a post-guidance function sees them."""

    x: torch.Tensor  # the noisy latent the model saw
    sigma: torch.Tensor  # [B]
    cond: torch.Tensor  # the positive conditioning's estimate
    uncond: torch.Tensor | None  # the negative's, when guidance evaluated it
    guided: torch.Tensor  # the guided estimate so far
    scale: float  # the guidance scale (cfg)


# A model option that reworks the guided estimate of every step (RescaleCFG, CFGZeroStar, APG, ...). Samplers call
# `DiffusionModel.guide` after combining the conditionings; the functions run in the order they were added.
PostGuidance = Callable[[GuidanceStep], torch.Tensor]


class UnetPatch(Protocol):
    """A model option that changes features inside the UNet (FreeU): `attach` registers forward hooks on the
    module and returns their handles; `unet_forward` removes them after each call."""

    def attach(self, unet: nn.Module) -> list[RemovableHandle]: ...


@dataclass(eq=False)
class DiffusionModel:
    unet: nn.Module  # diffusers UNet2DConditionModel
    family: str
    prediction: str  # "eps", "v", "x0" or "flow" (rectified flow: velocity)
    schedule: DiscreteSchedule
    manager: ModelManager
    latent_rgb_factors: tuple[tuple[float, float, float], ...]
    latent_rgb_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    extra: dict[str, Any] = field(default_factory=dict)
    post_guidance: tuple[PostGuidance, ...] = ()
    unet_patches: tuple[UnetPatch, ...] = ()

    def loom_nbytes(self) -> int:
        return module_nbytes(self.unet)

    def with_unet(self, unet: nn.Module) -> DiffusionModel:
        """A copy around another UNet (e.g. one with LoRA deltas applied); this one stays untouched."""
        return replace(self, unet=unet)

    def with_post_guidance(self, function: PostGuidance) -> DiffusionModel:
        """A copy whose sampling passes each step's guided estimate through `function` too (after those it has)."""
        return replace(self, post_guidance=(*self.post_guidance, function))

    def with_unet_patch(self, patch: UnetPatch) -> DiffusionModel:
        """A copy whose UNet calls run with `patch` attached (after those it has); the module is shared."""
        return replace(self, unet_patches=(*self.unet_patches, patch))

    def guide(self, step: GuidanceStep) -> torch.Tensor:
        """The guided estimate after the post-guidance functions, each seeing the previous one's result."""
        for function in self.post_guidance:
            step = replace(step, guided=function(step))
        return step.guided

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    def scalings(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in) of the denoiser, shaped to broadcast over [B, C, H, W]."""
        s = sigma[:, None, None, None]
        if self.prediction == "flow":  # x = (1 - s) x0 + s noise, model predicts v = noise - x0
            return torch.ones_like(s), -s, torch.ones_like(s)
        c_in = 1 / (s**2 + 1) ** 0.5
        if self.prediction == "v":
            return 1 / (s**2 + 1), -s / (s**2 + 1) ** 0.5, c_in
        if self.prediction == "x0":  # the UNet predicts the clean latent itself
            return torch.zeros_like(s), torch.ones_like(s), c_in
        return torch.ones_like(s), -s, c_in

    def noise_scaling(self, sigma: torch.Tensor, noise: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """The noisy latent at `sigma`: x0 + sigma * noise, with unit variance at the top of the schedule; for flow
        models the interpolation (1 - sigma) * x0 + sigma * noise."""
        if self.prediction == "flow":
            return latent * (1 - sigma) + noise * sigma
        first, top = float(sigma), self.schedule.sigma_max
        at_top = math.isclose(first, top, rel_tol=1e-5) or first > top
        return latent + noise * ((sigma**2 + 1) ** 0.5 if at_top else sigma)

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        return self.schedule.sigma_to_t(sigma)

    def unet_forward(
        self,
        x_in: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        added: dict[str, torch.Tensor] | None,
        down_residuals: list[torch.Tensor] | None = None,
        mid_residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        dtype = self.manager.dtype
        kwargs: dict[str, Any] = {}
        added = dict(added or {})
        class_labels = added.pop("class_labels", None)  # unCLIP's image-embedding label
        key_bias = added.pop("cross_attention_bias", None)  # style models' attn_bias, per prompt token
        if class_labels is not None:
            kwargs["class_labels"] = class_labels.to(dtype)
        if added:
            kwargs["added_cond_kwargs"] = {k: v.to(dtype) for k, v in added.items()}
        if down_residuals is not None:
            kwargs["down_block_additional_residuals"] = [r.to(dtype) for r in down_residuals]
        if mid_residual is not None:
            kwargs["mid_block_additional_residual"] = mid_residual.to(dtype)
        # The patches' hooks live for this call only: copies of a model share its module.
        handles = [handle for patch in self.unet_patches for handle in patch.attach(self.unet)]
        if key_bias is not None:
            handles += attach_key_bias(self.unet, key_bias)
        try:
            out = self.unet(x_in.to(dtype), timestep.to(dtype), encoder_hidden_states=context.to(dtype), **kwargs)
        finally:
            for handle in handles:
                handle.remove()
        return out.sample.float()
