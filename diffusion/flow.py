"""Flow-matching (rectified flow) models in the samplers' sigma formulation.

The noisy latent at noise level sigma in [0, 1] is x = (1 - sigma) * x0 + sigma * noise and the transformer predicts
the velocity v = noise - x0, so the denoiser is D(x, sigma) = x - sigma * v: the same `denoise(x, sigma)` every
k-diffusion sampler steps on. The model's noise levels are its 1000 training times t = i/1000 moved by a shift:
SD3's `shift * t / (1 + (shift - 1) * t)`, or FLUX's resolution-dependent `e^mu / (e^mu + 1/t - 1)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from diffusion.model import DiffusionModel
from diffusion.schedulers import DiscreteSchedule

TIMESTEPS = 1000
DEFAULT_GUIDANCE = 3.5


def sd3_shift(shift: float, t: torch.Tensor) -> torch.Tensor:
    return shift * t / (1 + (shift - 1) * t)


def flux_shift(mu: float, t: torch.Tensor) -> torch.Tensor:
    return math.exp(mu) / (math.exp(mu) + (1 / t - 1))


def flux_mu(width: int, height: int, max_shift: float, base_shift: float) -> float:
    """FLUX's shift for an image size: linear in the number of 2x2 latent patches, base_shift at 256 patches
    (256x256 pixels) and max_shift at 4096 (1024x1024)."""
    slope = (max_shift - base_shift) / (4096 - 256)
    return width * height / (8 * 8 * 2 * 2) * slope + base_shift - slope * 256


def shifted(kind: str, shift: float, t: torch.Tensor) -> torch.Tensor:
    """The noise level at unshifted time t in [0, 1]: `kind` "flux" (shift = mu) or "sd3" (shift multiplies)."""
    return flux_shift(shift, t) if kind == "flux" else sd3_shift(shift, t)


@dataclass(eq=False)
class FlowSchedule(DiscreteSchedule):
    """A flow model's 1000 shifted noise levels; a fraction of the way through sampling is placed on the
    continuous shift (sigma = shift(1 - percent), 1 at the start), as the reference's flow model sampling does,
    rather than between table entries."""

    kind: str = "sd3"
    shift: float = 1.0

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0:
            return 1.0
        if percent >= 1:
            return 0.0
        return float(shifted(self.kind, self.shift, torch.tensor(1 - percent, dtype=torch.float64)))

    def sigma_to_percent(self, sigma: float) -> float:
        """The inverse of `percent_to_sigma`: 1 - the unshifted time of `sigma`."""
        if sigma >= 1:
            return 0.0
        if sigma <= 0:
            return 1.0
        if self.kind == "flux":
            return 1 - 1 / (math.exp(self.shift) * (1 / sigma - 1) + 1)
        return 1 - sigma / (self.shift - (self.shift - 1) * sigma)


def flow_schedule(kind: str, shift: float) -> FlowSchedule:
    """The model's noise levels, ascending: `kind` "flux" (shift = mu) or "sd3" (shift multiplies)."""
    t = torch.arange(1, TIMESTEPS + 1, dtype=torch.float64) / TIMESTEPS
    return FlowSchedule(shifted(kind, shift, t).float(), kind, shift)


def pad_to_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """The latent extended (edge pixels repeated) to whole patch x patch tiles; outputs are cropped back."""
    h, w = x.shape[2], x.shape[3]
    return F.pad(x, (0, -w % patch, 0, -h % patch), mode="replicate")


def fit_width(context: torch.Tensor, width: int) -> torch.Tensor:
    """The prompt's states zero-padded to the transformer's joint width. States wider than it are refused unless
    the excess is the text encoder's own zero padding (CLIP-only SD3 prompts are padded to T5-XXL's width)."""
    have = context.shape[-1]
    if have <= width:
        return F.pad(context, (0, width - have))
    if bool(context[..., width:].any()):
        raise ValueError(f"the prompt's states are {have} wide; this transformer takes {width}: use its own text "
                         "encoders")  # fmt: skip
    return context[..., :width]


@dataclass(eq=False)
class FlowModel(DiffusionModel):
    """A FLUX or SD3 transformer (diffusers) as a flow-matching denoiser; `unet` holds the transformer."""

    shift_kind: str = "flux"
    shift: float = 1.15
    channels: int = 16  # the latent's channels (16 for FLUX and SD3)

    def with_shift(self, kind: str, shift: float) -> FlowModel:
        """A copy sampling with another shift (ModelSamplingFlux / ModelSamplingSD3)."""
        return replace(self, shift_kind=kind, shift=shift, schedule=flow_schedule(kind, shift))

    @property
    def latent_channels(self) -> int:
        return self.channels

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional: flow transformers take any sigma, and `unet_forward` maps it straight back."""
        return self.schedule.sigma_to_t(sigma)

    @property
    def guidance_embed(self) -> bool:
        return bool(getattr(self.unet.config, "guidance_embeds", False))

    def conditioning_inputs(self, opts: Sequence[Mapping[str, Any]], batch: int) -> dict[str, torch.Tensor]:
        """Per row: the pooled text embedding, and for FLUX the guidance value and whether it applies."""
        pooled, guidance, on = [], [], []
        for o in opts:
            p = o.get("pooled_output")
            if p is None:
                raise ValueError(f"{self.family}: the conditioning has no pooled text embedding; encode the prompt "
                                 f"with a {self.family} text encoder (DualCLIPLoader / TripleCLIPLoader)")  # fmt: skip
            p = p.reshape(p.shape[0], -1)
            pooled.append(p if p.shape[0] == batch else p[:1].repeat(batch, 1))
            g = o.get("guidance", DEFAULT_GUIDANCE)
            guidance.append(torch.full((batch,), float(g if g is not None else 0.0)))
            on.append(torch.full((batch,), 0.0 if g is None else 1.0))
        return {"pooled": torch.cat(pooled), "guidance": torch.cat(guidance), "guidance_on": torch.cat(on)}

    def unet_forward(
        self,
        x_in: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        added: dict[str, torch.Tensor] | None,
        down_residuals: list[torch.Tensor] | None = None,
        mid_residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if added is None:
            raise ValueError(f"{self.family}: the sampler passed no pooled text embedding")
        if down_residuals is not None or mid_residual is not None:
            raise ValueError(f"{self.family}: U-Net ControlNets do not apply to a {self.family} transformer")
        dtype, device = self.manager.dtype, x_in.device
        sigma = self.schedule.t_to_sigma(timestep.float()).to(device)
        pooled = added["pooled"].to(device, dtype)
        with self.patches_attached():
            if self.family == "flux":
                return self._flux(x_in, sigma, context.to(device, dtype), pooled, added).float()
            return self._sd3(x_in, sigma, context.to(device, dtype), pooled)

    def _sd3(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """Pad the latent to whole patches, fit the prompt to the joint width, run, crop."""
        h, w = x.shape[2], x.shape[3]
        out = self.unet(
            hidden_states=pad_to_patches(x, int(self.unet.config.patch_size)).to(self.manager.dtype),
            encoder_hidden_states=fit_width(context, int(self.unet.config.joint_attention_dim)),
            pooled_projections=pooled,
            timestep=(sigma * TIMESTEPS).to(self.manager.dtype),
        ).sample
        return out.float()[:, :, :h, :w]

    def _flux(
        self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor, added: dict
    ) -> torch.Tensor:
        """Pack the latent into 2x2 patches with their (0, row, col) position ids, run, unpack."""
        dtype = self.manager.dtype
        b, c, h, w = x.shape
        x = pad_to_patches(x, 2)
        hh, ww = x.shape[2] // 2, x.shape[3] // 2
        packed = x.view(b, c, hh, 2, ww, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, hh * ww, c * 4)
        img_ids = torch.zeros(hh, ww, 3, device=x.device)
        img_ids[..., 1] = torch.arange(hh, device=x.device)[:, None]
        img_ids[..., 2] = torch.arange(ww, device=x.device)[None, :]
        txt_ids = torch.zeros(context.shape[1], 3, device=x.device)
        kwargs: dict[str, Any] = {}
        hook = None
        if self.guidance_embed:
            kwargs["guidance"] = added["guidance"].to(x.device, dtype)
            on = added["guidance_on"].to(x.device, dtype)[:, None]
            if not bool(on.all()):  # FluxDisableGuidance: those rows skip the guidance embedding
                embedder = self.unet.time_text_embed.guidance_embedder
                hook = embedder.register_forward_hook(lambda _m, _i, out: out * on)
        try:
            out = self.unet(
                hidden_states=packed.to(dtype),
                encoder_hidden_states=context,
                pooled_projections=pooled,
                timestep=sigma.to(dtype),
                img_ids=img_ids.reshape(-1, 3),
                txt_ids=txt_ids,
                **kwargs,
            ).sample
        finally:
            if hook is not None:
                hook.remove()
        out = out.float().view(b, hh, ww, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, hh * 2, ww * 2)
        return out[:, :, :h, :w]
