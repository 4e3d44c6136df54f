"""ControlNets of the DiT families: SD3/SD3.5 (diffusers' SD3ControlNetModel) and FLUX (FluxControlNetModel).

Files are told apart from tensor names and shapes, as the reference does: `controlnet_blocks.N` with
`pos_embed_input.proj` is SD3 (diffusers layout, e.g. InstantX; or Stability's sd3.5_large_controlnet_* single files
in their own layout, with `transformer_blocks.N.adaLN_modulation`), with `controlnet_x_embedder` it is FLUX
(InstantX, Shakker "Union Pro"; `controlnet_mode_embedder` makes it a union ControlNet). The model is built on the
meta device from the detected sizes and given the file's tensors.

These ControlNets read a latent hint: the hint image is VAE-encoded at the latent's size when the sampler first
needs it. They run inside the transformer call (diffusion.flow.FlowModel) on the same packed inputs and give one
residual per joint/double block and per single block of the transformer, so chained ControlNets of different
depths add up block by block.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from diffusion import offline
from diffusion.checkpoint import assign_weights, build_empty
from diffusion.controlnet import ControlHint, ControlNetError, Crop, resize_cover
from diffusion.detect import _indices
from diffusion.flow import guidance_switched
from diffusion.flux import FluxArch
from diffusion.names import UNION_CONTROL_TYPES

BLOCKS_MARK = "controlnet_blocks.0.weight"
SD3_MARK = "pos_embed_input.proj.weight"
FLUX_MARK = "controlnet_x_embedder.weight"
SD35_MARK = "transformer_blocks.0.adaLN_modulation.1.bias"
CONTROL_TYPE_KEY = "control_type"  # Stability's SD3.5 files: 0 blur, 1 canny, 2 depth
SD35_HEAD_DIM = 64
# Stability's SD3.5 block names -> diffusers' SD3SingleTransformerBlock names (q/k/v come fused as `attn.qkv`)
SD35_NAMES = {
    "attn.proj": "attn.to_out.0",
    "mlp.fc1": "ff.net.0.proj",
    "mlp.fc2": "ff.net.2",
    "adaLN_modulation.1": "norm1.linear",
}


def is_dit_controlnet(shapes: Mapping[str, Any]) -> bool:
    return BLOCKS_MARK in shapes and (SD3_MARK in shapes or FLUX_MARK in shapes)


@dataclass(frozen=True)
class DiTControlArch:
    """What a DiT ControlNet file holds: its family, layout, diffusers constructor arguments and, for Stability's
    SD3.5 files, the control type its hint is prepared for."""

    family: str  # "flux" or "sd3"
    layout: str  # "diffusers" or "reference" (Stability's SD3.5 files)
    config: dict[str, Any]
    control_type: int = -1

    @property
    def union_modes(self) -> int:
        return int(self.config.get("num_mode") or 0)


def _shape(shapes: Mapping[str, Any], key: str) -> tuple[int, ...]:
    try:
        value = shapes[key]
    except KeyError as exc:
        raise ControlNetError(f"incomplete ControlNet: no {key!r}") from exc
    return tuple(value if isinstance(value, tuple) else value.shape)


def _count(shapes: Mapping[str, Any], pattern: str) -> int:
    return len(_indices(list(shapes), pattern))


def detect_dit_controlnet(shapes: Mapping[str, Any]) -> DiTControlArch:
    """The architecture of a FLUX or SD3 ControlNet from its tensor names and shapes (tensors or shapes)."""
    if not is_dit_controlnet(shapes):
        raise ControlNetError("not a FLUX or SD3 ControlNet: no controlnet_blocks with pos_embed_input/x_embedder")
    if FLUX_MARK in shapes:
        return _detect_flux(shapes)
    if SD35_MARK in shapes:
        return _detect_sd35(shapes)
    return _detect_sd3(shapes)


def _detect_flux(shapes: Mapping[str, Any]) -> DiTControlArch:
    if "input_hint_block.0.weight" in shapes:
        raise ControlNetError("FLUX ControlNets with a pixel hint encoder (input_hint_block) are not supported")
    hidden, in_channels = _shape(shapes, "x_embedder.weight")
    control_in = _shape(shapes, FLUX_MARK)[1]
    if control_in != in_channels:
        raise ControlNetError(
            f"this FLUX ControlNet takes {control_in // 4} latent channels (an inpainting ControlNet with a mask "
            f"channel); Loom runs FLUX ControlNets on the plain {in_channels // 4}-channel latent"
        )
    arch = FluxArch(
        prefix="",
        layout="diffusers",
        latent_channels=in_channels // 4,
        hidden=hidden,
        head_dim=_shape(shapes, "transformer_blocks.0.attn.norm_q.weight")[0],
        double_blocks=_count(shapes, r"transformer_blocks\.(\d+)\."),
        single_blocks=_count(shapes, r"single_transformer_blocks\.(\d+)\."),
        context_dim=_shape(shapes, "context_embedder.weight")[1],
        pooled_dim=_shape(shapes, "time_text_embed.text_embedder.linear_1.weight")[1],
        guidance="time_text_embed.guidance_embedder.linear_1.weight" in shapes,
    )
    mode_key = "controlnet_mode_embedder.weight"
    modes = _shape(shapes, mode_key)[0] if mode_key in shapes else None
    return DiTControlArch("flux", "diffusers", {**arch.config(), "num_mode": modes})


def _detect_sd3(shapes: Mapping[str, Any]) -> DiTControlArch:
    hidden, in_channels, patch, _ = _shape(shapes, "pos_embed.proj.weight")
    extra = _shape(shapes, SD3_MARK)[1] - in_channels
    if extra:
        raise ControlNetError(
            f"this SD3 ControlNet takes {extra} extra hint channels (an inpainting ControlNet with a mask channel); "
            "Loom runs SD3 ControlNets on the plain latent"
        )
    qk_norm = "transformer_blocks.0.attn.norm_q.weight" in shapes
    head_dim = _shape(shapes, "transformer_blocks.0.attn.norm_q.weight")[0] if qk_norm else min(SD35_HEAD_DIM, hidden)
    positions = _shape(shapes, "pos_embed.pos_embed")[1]
    config = {
        "sample_size": 128,
        "patch_size": patch,
        "in_channels": in_channels,
        "num_layers": _count(shapes, r"transformer_blocks\.(\d+)\."),
        "attention_head_dim": head_dim,
        "num_attention_heads": hidden // head_dim,
        "joint_attention_dim": _shape(shapes, "context_embedder.weight")[1],
        "caption_projection_dim": _shape(shapes, "context_embedder.weight")[0],
        "pooled_projection_dim": _shape(shapes, "time_text_embed.text_embedder.linear_1.weight")[1],
        "out_channels": in_channels,
        "pos_embed_max_size": math.isqrt(positions),
        "dual_attention_layers": tuple(_indices(list(shapes), r"transformer_blocks\.(\d+)\.attn2\.")),
        "qk_norm": "rms_norm" if qk_norm else None,
    }
    return DiTControlArch("sd3", "diffusers", config)


def _detect_sd35(shapes: Mapping[str, Any]) -> DiTControlArch:
    """Stability's SD3.5 ControlNets: blocks without a prompt stream, 64-wide heads; they share the transformer's
    patch embedding (diffusers: use_pos_embed False)."""
    hidden, in_channels, patch, _ = _shape(shapes, SD3_MARK)
    if hidden % SD35_HEAD_DIM:
        raise ControlNetError(f"an SD3.5 ControlNet {hidden} wide does not split into {SD35_HEAD_DIM}-wide heads")
    config = {
        "patch_size": patch,
        "in_channels": in_channels,
        "num_layers": _count(shapes, r"transformer_blocks\.(\d+)\."),
        "attention_head_dim": SD35_HEAD_DIM,
        "num_attention_heads": hidden // SD35_HEAD_DIM,
        "joint_attention_dim": None,
        "caption_projection_dim": hidden,
        "pooled_projection_dim": _shape(shapes, "time_text_embed.text_embedder.linear_1.weight")[1],
        "out_channels": in_channels,
        "pos_embed_max_size": None,
        "pos_embed_type": None,
        "use_pos_embed": False,
        "force_zeros_for_pooled_projection": False,
    }
    control_type = -1
    if CONTROL_TYPE_KEY in shapes:
        value = shapes[CONTROL_TYPE_KEY]
        control_type = round(float(value.reshape(-1)[0])) if isinstance(value, torch.Tensor) else -1
    return DiTControlArch("sd3", "reference", config, control_type)


def sd35_to_diffusers(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stability's SD3.5 ControlNet names -> diffusers': fused q/k/v split in three, block layers renamed."""
    out: dict[str, torch.Tensor] = {}
    block = re.compile(r"(transformer_blocks\.\d+\.)(.+)\.(weight|bias)$")
    for key, tensor in tensors.items():
        if key == CONTROL_TYPE_KEY:
            continue
        m = block.match(key)
        if m is None:
            out[key] = tensor
            continue
        head, layer, kind = m.groups()
        if layer == "attn.qkv":
            for name, part in zip(("to_q", "to_k", "to_v"), tensor.chunk(3, dim=0), strict=True):
                out[f"{head}attn.{name}.{kind}"] = part.contiguous()
        else:
            out[f"{head}{SD35_NAMES.get(layer, layer)}.{kind}"] = tensor
    return out


def load_dit_controlnet(tensors: Mapping[str, torch.Tensor], name: str) -> DiTControlNet:
    """A FLUX or SD3 ControlNet from its tensors, built on the meta device and filled from the file."""
    diffusers = offline.diffusers()
    try:
        arch = detect_dit_controlnet(tensors)
    except ControlNetError as exc:
        raise ControlNetError(f"{name}: {exc}") from exc
    state = sd35_to_diffusers(tensors) if arch.layout == "reference" else dict(tensors)
    cls = diffusers.FluxControlNetModel if arch.family == "flux" else diffusers.SD3ControlNetModel
    module = build_empty(lambda: cls.from_config(arch.config))
    try:
        module = assign_weights(module, state, f"{name}: {arch.family.upper()} ControlNet", torch.float32)
    except ValueError as exc:
        raise ControlNetError(str(exc)) from exc
    return DiTControlNet(module, arch)


class DiTControlNet(nn.Module):
    """The CONTROL_NET value of a FLUX or SD3 ControlNet, with the union mode its hint is read as (if any). The
    wrapped module is shared between copies made by SetUnionControlNetType, never changed."""

    def __init__(self, net: nn.Module, arch: DiTControlArch, types: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.net = net
        self.arch = arch
        self.types = tuple(types)

    @property
    def family(self) -> str:
        return self.arch.family

    @property
    def config(self) -> Any:
        return self.net.config

    def with_control_type(self, type_name: str) -> DiTControlNet:
        """A copy reading its hint as `type_name` (the reference's union type index is the FLUX mode)."""
        if type_name == "auto":
            return DiTControlNet(self.net, self.arch, ())
        if type_name not in UNION_CONTROL_TYPES:
            raise ControlNetError(
                f"unknown control type {type_name!r}; expected auto or one of {', '.join(UNION_CONTROL_TYPES)}"
            )
        return DiTControlNet(self.net, self.arch, (UNION_CONTROL_TYPES.index(type_name),))

    def prepare_image(self, image: torch.Tensor) -> torch.Tensor:
        """The hint image as Stability's SD3.5 canny and depth ControlNets were trained on (as the reference
        prepares it before encoding); others take it as it is."""
        if self.arch.control_type == 1:
            return image * 255 * 0.5 + 0.5
        if self.arch.control_type == 2:
            return 1.0 - image
        return image

    def latent_offset(self, vae: Any) -> float:
        """What turns Loom's latent into the one the ControlNet was trained on: SD3 ControlNets in the diffusers
        layout (InstantX) were trained on latents scaled without the VAE's shift."""
        if self.arch.family == "sd3" and self.arch.layout == "diffusers":
            return float(vae.shift_factor) * float(vae.scaling_factor)
        return 0.0

    def forward(self, inputs: Any, hint: torch.Tensor, strength: float, transformer: nn.Module) -> Any:
        """Residuals for each joint/double block and each single block of `transformer` (lists; the second empty
        for SD3): this ControlNet's block outputs spread over the transformer's blocks as diffusers spreads them."""
        net = self.net
        cond = inputs.pack(hint)
        if self.family == "flux":
            extra = {k: v for k, v in inputs.extra.items() if k != "guidance" or net.config.guidance_embeds}
            on = inputs.guidance_on if net.config.guidance_embeds else None
            if self.arch.union_modes and self.types:
                if self.types[0] >= self.arch.union_modes:
                    raise ControlNetError(
                        f"this union ControlNet knows {self.arch.union_modes} control types; "
                        f"{UNION_CONTROL_TYPES[self.types[0]]!r} is not one"
                    )
                extra["controlnet_mode"] = torch.full((cond.shape[0], 1), self.types[0], device=cond.device)
            with _mode_embedding(net, bool(self.types)), guidance_switched(net, on):
                blocks, single = net(
                    hidden_states=inputs.hidden, controlnet_cond=cond, conditioning_scale=strength,
                    encoder_hidden_states=inputs.context, pooled_projections=inputs.pooled,
                    timestep=inputs.timestep, return_dict=False, **extra,
                )  # fmt: skip
            return (
                spread(blocks or [], len(transformer.transformer_blocks), ceil=True),
                spread(single or [], len(transformer.single_transformer_blocks), ceil=True),
            )
        hidden = inputs.hidden
        if net.pos_embed is None:  # SD3.5: the transformer's own patch embedding
            hidden = transformer.pos_embed(hidden)
        pooled = torch.zeros_like(inputs.pooled) if net.config.force_zeros_for_pooled_projection else inputs.pooled
        context = inputs.context if net.context_embedder is not None else None
        (blocks,) = net(
            hidden_states=hidden, controlnet_cond=cond, conditioning_scale=strength, encoder_hidden_states=context,
            pooled_projections=pooled, timestep=inputs.timestep, return_dict=False,
        )  # fmt: skip
        return spread(list(blocks), len(transformer.transformer_blocks), ceil=False), []


@contextmanager
def _mode_embedding(net: nn.Module, used: bool) -> Iterator[None]:
    """A union FLUX ControlNet with no control type set ("auto") runs without its mode embedding, as the reference
    runs it; diffusers' module insists on a mode, so its union switch is off for that call only."""
    union = bool(getattr(net, "union", False))
    net.union = union and used
    try:
        yield
    finally:
        net.union = union


def spread(samples: Sequence[torch.Tensor], blocks: int, *, ceil: bool) -> list[torch.Tensor]:
    """A ControlNet's `samples` as one residual per transformer block: block i takes sample i // interval, the
    interval being blocks / samples (rounded up for FLUX, as diffusers' transformers index them)."""
    if not samples:
        return []
    interval = blocks / len(samples)
    if ceil:
        step = max(1, math.ceil(interval))
        return [samples[i // step] for i in range(blocks)]
    return [samples[int(i / interval)] for i in range(blocks)]


@dataclass(eq=False)
class LatentControlHint(ControlHint):
    """A DiT ControlNet applied to a conditioning: `image` is VAE-encoded at the latent's size when first
    needed (as the reference encodes these hints), and the ControlNet runs on the transformer's own inputs."""

    vae: Any = None
    _latents: dict[tuple[Any, ...], torch.Tensor] = field(default_factory=dict, repr=False)

    def chained(self, previous: ControlHint | None) -> LatentControlHint:
        return replace(self, previous=previous, _hints={}, _latents={})

    def latent(self, x: torch.Tensor, cond_indices: Sequence[int] | None, crop: Crop | None) -> torch.Tensor:
        """The encoded hint, one per row of `x`, in the ControlNet's latent space; cut like `x` for an area."""
        net: DiTControlNet = self.net  # type: ignore[assignment]
        height, width, y0, y1, x0, x1 = crop or (x.shape[-2], x.shape[-1], 0, x.shape[-2], 0, x.shape[-1])
        key = (height, width)
        latent = self._latents.get(key)
        if latent is None:
            scale = int(self.vae.downscale)
            pixels = resize_cover(self.image.movedim(-1, 1).float(), (height * scale, width * scale)).movedim(1, -1)
            latent = self.vae.encode(net.prepare_image(pixels)) + net.latent_offset(self.vae)
            self._latents[key] = latent
        rows = list(cond_indices) if cond_indices is not None else list(range(x.shape[0]))
        picked = latent[[r % latent.shape[0] for r in rows], :, y0:y1, x0:x1]
        return picked.to(x.device, x.dtype)

    def residuals(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        step_percent: float,
        cond_indices: Sequence[int] | None = None,
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,
        crop: Crop | None = None,
        model: Any = None,
    ) -> Any:
        """(joint/double block residuals, single block residuals) for one transformer call of `model`, or None
        outside the range or at strength 0."""
        net: DiTControlNet = self.net  # type: ignore[assignment]
        kind = "FLUX" if net.family == "flux" else "SD3"
        if getattr(model, "prediction", None) != "flow":
            family = getattr(model, "family", "U-Net")
            raise ControlNetError(
                f"{self.source}: this is a {kind} ControlNet; it cannot guide a {family} U-Net model: "
                "load a ControlNet made for that model"
            )
        if model.family != net.family:
            raise ControlNetError(
                f"{self.source}: this is a {kind} ControlNet; it cannot guide a {model.family} transformer"
            )
        if not self.active(step_percent):
            return None
        inputs = model.transformer_inputs(x, timestep, encoder_hidden_states, added_cond_kwargs or {})
        param = next(net.parameters())
        if (param.device, param.dtype) != (inputs.hidden.device, inputs.hidden.dtype):
            net.to(inputs.hidden.device, inputs.hidden.dtype)  # loaded on the CPU; follows the transformer once
        hint = self.latent(x, cond_indices, crop)
        return net(inputs, hint, self.strength, model.unet)
