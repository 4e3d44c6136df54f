"""Flow-matching (rectified flow) models in the samplers' sigma formulation.

The noisy latent at noise level sigma in [0, 1] is x = (1 - sigma) * x0 + sigma * noise and the transformer predicts
the velocity v = noise - x0, so the denoiser is D(x, sigma) = x - sigma * v: the same `denoise(x, sigma)` every
k-diffusion sampler steps on. The model's noise levels are its 1000 training times t = i/1000 moved by a shift:
SD3's `shift * t / (1 + (shift - 1) * t)`, or FLUX's resolution-dependent `e^mu / (e^mu + 1/t - 1)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

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
    def takes_attention_bias(self) -> bool:
        """FLUX's joint attention takes a mask (as in the reference); SD3's is not given one."""
        return self.family == "flux"

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

    def transformer_inputs(
        self, x_in: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor, added: dict[str, torch.Tensor]
    ) -> TransformerInputs:
        """One call's transformer inputs in its own units; a DiT ControlNet of the call reads the same ones."""
        dtype, device = self.manager.dtype, x_in.device
        sigma = self.schedule.t_to_sigma(timestep.float()).to(device)
        pooled = added["pooled"].to(device, dtype)
        context = context.to(device, dtype)
        if self.family != "flux":
            patch, width = int(self.unet.config.patch_size), int(self.unet.config.joint_attention_dim)
            hidden, time = pad_to_patches(x_in, patch).to(dtype), (sigma * TIMESTEPS).to(dtype)
            return TransformerInputs(self.family, hidden, fit_width(context, width), pooled, time, patch, {})
        packed = pack_patches(x_in).to(dtype)
        hh, ww = -(-x_in.shape[2] // 2), -(-x_in.shape[3] // 2)
        img_ids = torch.zeros(hh, ww, 3, device=device)
        img_ids[..., 1] = torch.arange(hh, device=device)[:, None]
        img_ids[..., 2] = torch.arange(ww, device=device)[None, :]
        extra = {"img_ids": img_ids.reshape(-1, 3), "txt_ids": torch.zeros(context.shape[1], 3, device=device)}
        on = None
        if self.guidance_embed:
            extra["guidance"] = added["guidance"].to(device, dtype)
            on = added["guidance_on"].to(device, dtype)
        return TransformerInputs(self.family, packed, context, pooled, sigma.to(dtype), 2, extra, on)

    def unet_forward(
        self,
        x_in: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        added: dict[str, torch.Tensor] | None,
        block_residuals: list[torch.Tensor] | None = None,
        single_block_residuals: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """`block_residuals` / `single_block_residuals`: a DiT ControlNet's residuals, one per joint (double) block
        and per single block of the transformer (diffusion.dit_controlnet)."""
        if added is None:
            raise ValueError(f"{self.family}: the sampler passed no pooled text embedding")
        if "cross_attention_bias" in added and not self.takes_attention_bias:
            raise ValueError(f"{self.family}: the transformer takes no attention bias (style models' attn_bias)")
        inputs = self.transformer_inputs(x_in, timestep, context, added)
        h, w = x_in.shape[2], x_in.shape[3]
        with self.patches_attached():
            if self.family == "flux":
                out = self._flux(inputs, added, block_residuals or None, single_block_residuals or None)
                return unpack_patches(out.float(), h, w)
            out = self.unet(
                hidden_states=inputs.hidden,
                encoder_hidden_states=inputs.context,
                pooled_projections=inputs.pooled,
                timestep=inputs.timestep,
                block_controlnet_hidden_states=block_residuals or None,
            ).sample
            return out.float()[:, :, :h, :w]

    def _flux(
        self,
        inputs: TransformerInputs,
        added: dict[str, torch.Tensor],
        blocks: list[torch.Tensor] | None,
        single: list[torch.Tensor] | None,
    ) -> torch.Tensor:
        """The packed prediction; rows whose guidance is off (FluxDisableGuidance) skip the guidance embedding, and
        style models' attn_bias is a mask over the joint [prompt, image] attention."""
        kwargs: dict[str, Any] = {}
        if "cross_attention_bias" in added:
            bias, group = added["cross_attention_bias"], added["cross_attention_bias_group"]
            mask = joint_attention_bias(bias, group, inputs.hidden.shape[1])
            kwargs["joint_attention_kwargs"] = {"attention_mask": mask.to(inputs.hidden.device, inputs.hidden.dtype)}
        with guidance_switched(self.unet, inputs.guidance_on):
            return self.unet(
                hidden_states=inputs.hidden,
                encoder_hidden_states=inputs.context,
                pooled_projections=inputs.pooled,
                timestep=inputs.timestep,
                controlnet_block_samples=blocks,
                controlnet_single_block_samples=single,
                **inputs.extra,
                **kwargs,
            ).sample


@contextmanager
def guidance_switched(module: nn.Module, on: torch.Tensor | None) -> Iterator[None]:
    """Rows whose guidance is off (FluxDisableGuidance, `on` 0) get no guidance embedding from `module` (a FLUX
    transformer or ControlNet), as when the reference passes it none: the embedder's output zeroed for them."""
    if on is None or bool(on.all()):
        yield
        return
    rows = on[:, None]
    hook = module.time_text_embed.guidance_embedder.register_forward_hook(lambda _m, _i, out: out * rows)
    try:
        yield
    finally:
        hook.remove()


def pack_patches(x: torch.Tensor) -> torch.Tensor:
    """FLUX's sequence: the latent (padded to whole 2x2 patches) as [B, patches, C * 4], rows first."""
    b, c = x.shape[:2]
    x = pad_to_patches(x, 2)
    hh, ww = x.shape[2] // 2, x.shape[3] // 2
    return x.view(b, c, hh, 2, ww, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, hh * ww, c * 4)


def unpack_patches(packed: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """`pack_patches` undone, cropped back to `h` x `w`."""
    b, c = packed.shape[0], packed.shape[2] // 4
    hh, ww = -(-h // 2), -(-w // 2)
    out = packed.view(b, hh, ww, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, hh * 2, ww * 2)
    return out[:, :, :h, :w]


@dataclass(frozen=True)
class TransformerInputs:
    """A transformer call's inputs: FLUX's packed sequence or SD3's latent padded to whole patches, the prompt fit
    to the joint width, the pooled embedding, the time in the transformer's units, and FLUX's position ids (and
    guidance). A ControlNet's latent hint goes through `pack` to line up with `hidden`."""

    family: str
    hidden: torch.Tensor
    context: torch.Tensor
    pooled: torch.Tensor
    timestep: torch.Tensor
    patch: int
    extra: dict[str, torch.Tensor]
    guidance_on: torch.Tensor | None = None  # FLUX rows: 1 where the guidance embedding applies

    def pack(self, latent: torch.Tensor) -> torch.Tensor:
        if self.family == "flux":
            return pack_patches(latent).to(self.hidden.dtype)
        return pad_to_patches(latent, self.patch).to(self.hidden.dtype)


def joint_attention_bias(bias: torch.Tensor, group: torch.Tensor, image_tokens: int) -> torch.Tensor:
    """The additive attention mask [rows, 1, L + N, L + N] over a joint [prompt (L), image (N)] sequence from a
    per-prompt-token bias [rows, 1, L] and the style application that made each token [rows, L] (0: the prompt's
    own): image positions and the prompt's own tokens get every token's bias, a style token only the biases of
    later applications' tokens (so a style's tokens attend to each other as they would unbiased); keys that are
    image positions get none."""
    rows, _, length = bias.shape
    prompt = torch.where(group[:, None, :] > group[:, :, None], bias, torch.zeros((), dtype=bias.dtype))
    queries = torch.cat([prompt, bias.expand(rows, image_tokens, length)], dim=1)
    return F.pad(queries, (0, image_tokens))[:, None]
