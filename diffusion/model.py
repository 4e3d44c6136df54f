"""The MODEL socket value: a diffusers UNet wrapped as a k-diffusion denoiser D(x, sigma) -> x0 estimate."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch
from torch import nn

from diffusion.control_residuals import ControlResiduals
from diffusion.memory import ModelManager, module_nbytes
from diffusion.schedulers import DiscreteSchedule
from diffusion.unet_patches import attach_key_bias


class Removable(Protocol):
    """What a UNet patch leaves behind for one call: a forward hook's handle, or a swapped attention processor."""

    def remove(self) -> None: ...


class UnetPatch(Protocol):
    """A model option that changes features inside the UNet (FreeU, attention patches): `attach` registers hooks
    on the module (or swaps attention processors) and returns what undoes them; `unet_forward` undoes them after
    each call, so the shared module is never left changed."""

    def attach(self, unet: nn.Module) -> list[Removable]: ...


class Predictor(Protocol):
    """One more x0 estimate within a sampling step, for guidance that needs extra model calls (PAG, SAG,
    Perp-Neg): of the guider's conditioning set `conditioning` (0 positive, 1 negative) or of a conditioning
    list, at the noisy latent `x`, with `patch` attached for that call only. None when the guider has no such set."""

    def __call__(
        self, x: torch.Tensor, conditioning: int | Sequence[Any], patch: UnetPatch | None = None
    ) -> torch.Tensor | None: ...


@dataclass(frozen=True)
class GuidanceStep:
    """One sampling step's x0 estimates around guidance, as a post-guidance function sees them."""

    x: torch.Tensor  # the noisy latent the model saw
    sigma: torch.Tensor  # [B]
    cond: torch.Tensor  # the positive conditioning's estimate
    uncond: torch.Tensor | None  # the negative's, when guidance evaluated it
    guided: torch.Tensor  # the guided estimate so far
    scale: float  # the guidance scale (cfg)
    predict: Predictor | None = None  # further estimates of this step, when the sampler offers them


# A model option that reworks the guided estimate of every step (RescaleCFG, CFGZeroStar, APG, ...). Samplers call
# `DiffusionModel.guide` after combining the conditionings; the functions run in the order they were added.
PostGuidance = Callable[[GuidanceStep], torch.Tensor]


class LatentFormat(Protocol):
    """A model's own latent space (diffusion.latent_format): the sampler maps Loom's latent in and the result out."""

    def to_model(self, latent: torch.Tensor) -> torch.Tensor: ...

    def from_model(self, latent: torch.Tensor) -> torch.Tensor: ...


# A model option that reworks the inpainting mask at each step (Differential Diffusion): (mask, sigma, the run's
# sigmas, the model) -> the mask that step uses (1 = repaint).
DenoiseMask = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, "DiffusionModel"], torch.Tensor]


@dataclass(eq=False)
class DiffusionModel:
    unet: nn.Module  # diffusers UNet2DConditionModel
    family: str
    prediction: str  # "eps", "v", "edm" (+v, EDM), "x0" or "flow" (rectified flow: velocity)
    schedule: DiscreteSchedule
    manager: ModelManager
    latent_rgb_factors: tuple[tuple[float, float, float], ...]
    latent_rgb_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    extra: dict[str, Any] = field(default_factory=dict)
    post_guidance: tuple[PostGuidance, ...] = ()
    unet_patches: tuple[UnetPatch, ...] = ()
    denoise_mask: DenoiseMask | None = None
    sigma_data: float = 1.0  # the data's standard deviation the prediction's scalings assume (EDM: 0.5)
    latent_format: LatentFormat | None = None  # the model's own latent space, when not Loom's (Playground v2.5)

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

    def with_denoise_mask(self, function: DenoiseMask) -> DiffusionModel:
        """A copy whose inpainting masks go through `function` at each step (replacing any it has)."""
        return replace(self, denoise_mask=function)

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
        data = self.sigma_data**2
        c_in = 1 / (s**2 + data) ** 0.5
        if self.prediction in ("v", "edm"):  # Karras et al. 2022, table 1; EDM's network predicts +v
            c_out = s * self.sigma_data / (s**2 + data) ** 0.5
            return data / (s**2 + data), c_out if self.prediction == "edm" else -c_out, c_in
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
        return self.schedule.unet_time(sigma)

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
        residuals = ControlResiduals(
            [r.to(dtype) for r in down_residuals or ()], None if mid_residual is None else mid_residual.to(dtype)
        )
        with self.patches_attached(key_bias, residuals):
            out = self.unet(x_in.to(dtype), timestep.to(dtype), encoder_hidden_states=context.to(dtype), **kwargs)
        return out.sample.float()

    @contextmanager
    def patches_attached(
        self, key_bias: torch.Tensor | None = None, residuals: ControlResiduals | None = None
    ) -> Iterator[None]:
        """The patches' hooks for one call only: copies of a model share its module. They come off in reverse
        order, so processors wrapped twice go back to the original. `key_bias` adds a per-prompt-token
        cross-attention bias (style models' attn_bias) for the call, `residuals` a ControlNet's residuals (added
        where they fit the features the patches leave)."""
        handles: list[Removable] = []
        try:
            for patch in (*self.unet_patches, *([residuals] if residuals is not None else ())):
                handles.extend(patch.attach(self.unet))
            if key_bias is not None:
                handles.extend(attach_key_bias(self.unet, key_bias))
            yield
        finally:
            for handle in reversed(handles):
                handle.remove()
