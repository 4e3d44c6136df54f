"""ControlNets: load them (single-file LDM layout or diffusers folders) and hook them into the sampler.

A ControlNet applied to a conditioning becomes a `ControlHint` stored under `"control"` in the conditioning's
dict. The sampler calls `residuals(...)` on it and on every `.previous` in the chain, sums what they return, and
hands the sums to the UNet as `down_block_additional_residuals` / `mid_block_additional_residual`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from diffusion.ldm_names import ldm_state_dict_names

LDM_PREFIX = "control_model."
Residuals = tuple[list[torch.Tensor], torch.Tensor]


class ControlNetError(ValueError):
    """A ControlNet file Loom cannot use; the message names the file and what was found."""


@dataclass(frozen=True)
class ControlNetArch:
    """What the tensor shapes of an LDM-layout ControlNet tell about its architecture."""

    in_channels: int
    block_channels: tuple[int, ...]
    layers_per_block: int
    attention: tuple[bool, ...]
    transformer_depth: tuple[int, ...]
    context_dim: int
    linear_projection: bool
    hint_channels: int
    hint_embedding_channels: tuple[int, ...]
    adm_in_channels: int | None

    def heads(self) -> tuple[int, ...]:
        """Head counts cannot be read from shapes: SD 1.x uses 8 heads, later families 64-wide heads."""
        if self.context_dim == 768:
            return (8,) * len(self.block_channels)
        return tuple(max(1, c // 64) for c in self.block_channels)

    def diffusers_config(self) -> dict[str, Any]:
        depth = tuple(d or 1 for d in self.transformer_depth)
        config: dict[str, Any] = {
            "in_channels": self.in_channels,
            "conditioning_channels": self.hint_channels,
            "block_out_channels": self.block_channels,
            "layers_per_block": self.layers_per_block,
            "down_block_types": tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in self.attention),
            "transformer_layers_per_block": depth,
            "cross_attention_dim": self.context_dim,
            "attention_head_dim": self.heads(),
            "use_linear_projection": self.linear_projection,
            "conditioning_embedding_out_channels": self.hint_embedding_channels,
            "norm_num_groups": 32 if all(c % 32 == 0 for c in self.block_channels) else _common_groups(self),
        }
        if self.adm_in_channels is not None:
            config |= {
                "addition_embed_type": "text_time",
                "addition_time_embed_dim": 256,
                "projection_class_embeddings_input_dim": self.adm_in_channels,
            }
        return config


def _common_groups(arch: ControlNetArch) -> int:
    """Tiny test models have too few channels for 32 groups; use the largest count dividing every level."""
    return math.gcd(*arch.block_channels, 32)


def _indices(keys: Sequence[str], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := rx.match(k))})


def detect_controlnet(shapes: Mapping[str, tuple[int, ...]]) -> ControlNetArch:
    """The architecture of an LDM-layout ControlNet (keys without the `control_model.` prefix)."""
    keys = list(shapes)
    for required in ("input_blocks.0.0.weight", "input_hint_block.0.weight", "middle_block_out.0.weight"):
        if required not in shapes:
            found = sorted({k.split(".")[0] for k in keys})[:8]
            raise ControlNetError(f"not an LDM-layout ControlNet: no {required!r}; top-level names found: {found}")
    levels: list[list[int]] = [[]]
    for n in _indices(keys, r"input_blocks\.(\d+)\.")[1:]:
        if f"input_blocks.{n}.0.op.weight" in shapes:
            levels.append([])
        elif f"input_blocks.{n}.0.in_layers.2.weight" in shapes:
            levels[-1].append(n)
        else:
            raise ControlNetError(f"ControlNet input block {n} is neither a resnet nor a downsampler")
    channels, attention, depth = [], [], []
    context_dim, linear = 0, False
    for level in levels:
        first = level[0]
        channels.append(shapes[f"input_blocks.{first}.0.out_layers.3.weight"][0])
        proj_in = shapes.get(f"input_blocks.{first}.1.proj_in.weight")
        attention.append(proj_in is not None)
        depth.append(len(_indices(keys, rf"input_blocks\.{first}\.1\.transformer_blocks\.(\d+)\.")))
        if proj_in is not None:
            context_dim = shapes[f"input_blocks.{first}.1.transformer_blocks.0.attn2.to_k.weight"][1]
            linear = len(proj_in) == 2
    hint = _indices(keys, r"input_hint_block\.(\d+)\.weight")
    adm = shapes.get("label_emb.0.0.weight")
    return ControlNetArch(
        in_channels=shapes["input_blocks.0.0.weight"][1],
        block_channels=tuple(channels),
        layers_per_block=len(levels[0]),
        attention=tuple(attention),
        transformer_depth=tuple(depth),
        context_dim=context_dim,
        linear_projection=linear,
        hint_channels=shapes["input_hint_block.0.weight"][1],
        hint_embedding_channels=tuple(shapes[f"input_hint_block.{i}.weight"][0] for i in hint[:-1:2]),
        adm_in_channels=adm[1] if adm is not None else None,
    )


def controlnet_from_ldm(state_dict: Mapping[str, torch.Tensor], name: str = "ControlNet") -> nn.Module:
    """Build a diffusers ControlNetModel on the meta device and give it the file's tensors (no random init)."""
    from diffusers import ControlNetModel

    tensors = {k[len(LDM_PREFIX) :] if k.startswith(LDM_PREFIX) else k: v for k, v in state_dict.items()}
    try:
        arch = detect_controlnet({k: tuple(v.shape) for k, v in tensors.items()})
    except ControlNetError as exc:
        raise ControlNetError(f"{name}: {exc}") from exc
    with torch.device("meta"):
        model = ControlNetModel(**arch.diffusers_config())
    names = ldm_state_dict_names(model)
    missing = [ldm for ldm in names.values() if ldm not in tensors]
    if missing:
        raise ControlNetError(
            f"{name}: {len(missing)} tensors missing for the detected architecture, e.g. {missing[:3]}"
        )
    converted = {key: tensors[ldm] for key, ldm in names.items()}
    model.load_state_dict(converted, assign=True, strict=True)
    return model.float().eval().requires_grad_(False)


def load_controlnet(path: Path) -> nn.Module:
    """A ControlNet from a single LDM-layout file or a diffusers folder (config.json + weights)."""
    path = Path(path)
    if path.is_dir():
        return _load_diffusers_folder(path)
    from diffusion.lora import read_lora

    try:
        tensors = read_lora(str(path))
    except ValueError as exc:
        raise ControlNetError(str(exc)) from exc
    if any(k.startswith(("controlnet_down_blocks.", "controlnet_cond_embedding.")) for k in tensors):
        if (path.parent / "config.json").is_file():
            return _load_diffusers_folder(path.parent)
        raise ControlNetError(f"{path.name}: diffusers-layout weights need their folder with config.json")
    return controlnet_from_ldm(tensors, path.name)


def _load_diffusers_folder(folder: Path) -> nn.Module:
    from diffusers import ControlNetModel
    from safetensors.torch import load_file

    config_path = folder / "config.json"
    weights = next((folder / n for n in ("diffusion_pytorch_model.safetensors",) if (folder / n).is_file()), None)
    if not config_path.is_file() or weights is None:
        raise ControlNetError(f"{folder.name}: a diffusers ControlNet folder needs config.json and a .safetensors")
    config = {k: v for k, v in json.loads(config_path.read_text()).items() if not k.startswith("_")}
    with torch.device("meta"):
        model = ControlNetModel(**config)
    model.load_state_dict(load_file(str(weights)), assign=True, strict=True)
    return model.float().eval().requires_grad_(False)


@dataclass(eq=False)
class ControlHint:
    """One applied ControlNet: hint image, strength and the part of the schedule where it acts.

    `previous` is the control applied before this one (a chain); the sampler sums every link's residuals.
    """

    net: nn.Module
    image: torch.Tensor  # IMAGE [B, H, W, C] in 0..1
    strength: float = 1.0
    start_percent: float = 0.0
    end_percent: float = 1.0
    previous: ControlHint | None = None
    _hints: dict[tuple[Any, ...], torch.Tensor] = field(default_factory=dict, repr=False)

    def chained(self, previous: ControlHint | None) -> ControlHint:
        """This control put on top of another chain (a fresh object: applied conditionings are never mutated)."""
        return ControlHint(self.net, self.image, self.strength, self.start_percent, self.end_percent, previous)

    def active(self, step_percent: float) -> bool:
        """Acts from start_percent up to (not including) end_percent of the schedule; end 1.0 means to the end."""
        if self.strength == 0.0 or step_percent < self.start_percent:
            return False
        return step_percent < self.end_percent or self.end_percent >= 1.0

    def hint(self, x: torch.Tensor, cond_indices: Sequence[int] | None) -> torch.Tensor:
        """The hint image resized to the latent's size times 8, one per row of `x`, as [B, C, H, W]."""
        size = (x.shape[-2] * 8, x.shape[-1] * 8)
        key = (size, x.device, x.dtype)
        image = self._hints.get(key)
        if image is None:
            image = resize_cover(self.image.movedim(-1, 1), size).to(x.device, x.dtype)
            self._hints[key] = image
        rows = list(cond_indices) if cond_indices is not None else list(range(x.shape[0]))
        return image[[r % image.shape[0] for r in rows]]

    def residuals(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        step_percent: float,
        cond_indices: Sequence[int] | None = None,
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,
    ) -> Residuals | None:
        """This ControlNet's residuals for one UNet call, or None outside its range or at strength 0."""
        if not self.active(step_percent):
            return None
        net = self.net
        param = next(net.parameters())
        if param.device != x.device:  # loaded on the CPU; follows the latent to the compute device once
            net.to(x.device)
        dtype = param.dtype
        hint = self.hint(x, cond_indices)
        down, mid = net(
            x.to(dtype),
            timestep,
            encoder_hidden_states=encoder_hidden_states.to(dtype),
            controlnet_cond=hint.to(dtype),
            conditioning_scale=self.strength,
            added_cond_kwargs=added_cond_kwargs,
            return_dict=False,
        )
        return [d.to(x.dtype) for d in down], mid.to(x.dtype)


def chain_residuals(
    control: ControlHint | None,
    x: torch.Tensor,
    timestep: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    step_percent: float,
    cond_indices: Sequence[int] | None = None,
    added_cond_kwargs: dict[str, torch.Tensor] | None = None,
) -> Residuals | None:
    """The summed residuals of a chain of controls (None when no link acts at this step)."""
    total: Residuals | None = None
    while control is not None:
        out = control.residuals(x, timestep, encoder_hidden_states, step_percent, cond_indices, added_cond_kwargs)
        if out is not None:
            total = (
                out if total is None else ([a + b for a, b in zip(total[0], out[0], strict=True)], total[1] + out[1])
            )
        control = control.previous
    return total


def resize_cover(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, C, H, W] scaled to cover `size` keeping the aspect ratio, then centre-cropped to it."""
    height, width = images.shape[-2:]
    target_h, target_w = size
    scale = max(target_h / height, target_w / width)
    new_h, new_w = max(target_h, round(height * scale)), max(target_w, round(width * scale))
    if (new_h, new_w) != (height, width):
        images = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    top, left = (new_h - target_h) // 2, (new_w - target_w) // 2
    return images[..., top : top + target_h, left : left + target_w]
