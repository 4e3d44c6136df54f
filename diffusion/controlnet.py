"""ControlNets: load them (single-file LDM layout or diffusers folders) and hook them into the sampler.

A ControlNet applied to a conditioning becomes a `ControlHint` stored under `"control"` in the conditioning's
dict. The sampler calls `residuals(...)` on it and on every `.previous` in the chain, sums what they return, and
hands the sums to the UNet as `down_block_additional_residuals` / `mid_block_additional_residual`. ControlNets of
the DiT families (FLUX, SD3) live in diffusion.dit_controlnet and chain the same way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from diffusion import offline
from diffusion.checkpoint import read_tensors
from diffusion.configs import unet_config
from diffusion.detect import UNetArch, UnknownModel, detect_unet, guess_family
from diffusion.ldm_names import ldm_state_dict_names
from diffusion.names import UNION_CONTROL_TYPES

LDM_PREFIX = "control_model."
# LDM names a ControlNet shares with its base UNet (its copy of the UNet's encoder half); the rest (hint encoder,
# zero convs, middle_block_out) exist only in ControlNets.
UNET_SHARED = ("input_blocks.", "middle_block.", "time_embed.", "label_emb.")
DIFFERENCE_MARKER = "difference"
Residuals = tuple[list[torch.Tensor], torch.Tensor]
Crop = tuple[int, int, int, int, int, int]  # whole latent (height, width) and the part (y0, y1, x0, x1), in cells


class ControlNetError(ValueError):
    """A ControlNet file Loom cannot use; the message names the file and what was found."""


@dataclass(frozen=True)
class ControlNetArch:
    """A ControlNet is a copy of a UNet's encoder half plus a hint encoder: the architecture of each."""

    unet: UNetArch
    family: str
    hint_channels: int
    hint_embedding_channels: tuple[int, ...]

    def diffusers_config(self) -> dict[str, Any]:
        config = unet_config(self.unet, self.family)
        for unet_only in ("sample_size", "out_channels", "up_block_types"):
            config.pop(unet_only)
        channels = self.unet.block_channels
        return config | {
            "mid_block_type": config["mid_block_type"] or "UNetMidBlock2D",
            "conditioning_channels": self.hint_channels,
            "conditioning_embedding_out_channels": self.hint_embedding_channels,
            # tiny test models have too few channels for 32 groups: the largest count dividing every level
            "norm_num_groups": math.gcd(*channels, 32),
        }


def _indices(keys: Sequence[str], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := rx.match(k))})


def detect_controlnet(shapes: Mapping[str, tuple[int, ...]]) -> ControlNetArch:
    """The architecture of an LDM-layout ControlNet (keys without the `control_model.` prefix).

    Its encoder half is read as a UNet's; ControlNets have no output conv, so the UNet detector is given one."""
    for required in ("input_blocks.0.0.weight", "input_hint_block.0.weight", "middle_block_out.0.weight"):
        if required not in shapes:
            found = sorted({k.split(".")[0] for k in shapes})[:8]
            raise ControlNetError(f"not an LDM-layout ControlNet: no {required!r}; top-level names found: {found}")
    conv_in = shapes["input_blocks.0.0.weight"]
    try:
        unet = detect_unet({**shapes, "out.2.weight": (conv_in[1], *conv_in[1:])}, prefix="")
    except UnknownModel as exc:
        raise ControlNetError(f"not a ControlNet Loom can build: {exc}") from exc
    hint = _indices(list(shapes), r"input_hint_block\.(\d+)\.weight")
    return ControlNetArch(
        unet=unet,
        family=guess_family(unet.context_dim, unet.adm_in_channels is not None),
        hint_channels=shapes["input_hint_block.0.weight"][1],
        hint_embedding_channels=tuple(shapes[f"input_hint_block.{i}.weight"][0] for i in hint[:-1:2]),
    )


def _strip_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix(LDM_PREFIX): v for k, v in state_dict.items() if k != DIFFERENCE_MARKER}


def controlnet_from_ldm(state_dict: Mapping[str, torch.Tensor], name: str = "ControlNet") -> nn.Module:
    """Build a diffusers ControlNetModel on the meta device and give it the file's tensors (no random init)."""
    controlnet_class = offline.diffusers().ControlNetModel
    tensors = _strip_prefix(state_dict)
    try:
        arch = detect_controlnet({k: tuple(v.shape) for k, v in tensors.items()})
    except ControlNetError as exc:
        raise ControlNetError(f"{name}: {exc}") from exc
    with torch.device("meta"):
        model = controlnet_class(**arch.diffusers_config())
    names = ldm_state_dict_names(model)
    missing = [ldm for ldm in names.values() if ldm not in tensors]
    if missing:
        raise ControlNetError(
            f"{name}: {len(missing)} tensors missing for the detected architecture, e.g. {missing[:3]}"
        )
    converted = {key: tensors[ldm] for key, ldm in names.items()}
    model.load_state_dict(converted, assign=True, strict=True)
    return model.float().eval().requires_grad_(False)


def is_difference(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Difference ControlNets carry a `difference` marker tensor (as written by the public extraction scripts)."""
    return DIFFERENCE_MARKER in state_dict


def undo_difference(state_dict: Mapping[str, torch.Tensor], base_unet: nn.Module) -> dict[str, torch.Tensor]:
    """A full ControlNet state dict from a difference file and the UNet it is used with.

    A difference file stores `control - base` for every layer the ControlNet shares with the UNet it was trained
    from, leaves out shared layers that did not change, and stores ControlNet-only layers (hint encoder, zero
    convs) as they are. Adding the base UNet's weights back gives a ControlNet adapted to that UNet."""
    tensors = _strip_prefix(state_dict)
    weights = base_unet.state_dict()
    base = {
        ldm: weights[key].detach().to("cpu", torch.float32)
        for key, ldm in ldm_state_dict_names(base_unet).items()
        if ldm.startswith(UNET_SHARED)
    }
    full = dict(base)
    for key, tensor in tensors.items():
        shared = base.get(key)
        if shared is not None and tuple(shared.shape) == tuple(tensor.shape):
            full[key] = shared + tensor.float()
        else:
            full[key] = tensor
    return full


def load_controlnet(path: Path, base_unet: nn.Module | None = None) -> nn.Module:
    """A ControlNet from a single LDM-layout file or a diffusers folder (config.json + weights).

    With `base_unet`, a difference file (see `undo_difference`) is completed with that UNet's weights; a full
    ControlNet file loads as it is either way."""
    path = Path(path)
    if path.is_dir():
        return _load_diffusers_folder(path)
    try:
        tensors = read_tensors(path)
    except ValueError as exc:
        raise ControlNetError(str(exc)) from exc
    from diffusion.dit_controlnet import is_dit_controlnet, load_dit_controlnet

    if is_dit_controlnet(tensors):
        return load_dit_controlnet(tensors, path.name)
    if any(k.startswith(("controlnet_down_blocks.", "controlnet_cond_embedding.")) for k in tensors):
        if (path.parent / "config.json").is_file():
            return _load_diffusers_folder(path.parent)
        raise ControlNetError(f"{path.name}: diffusers-layout weights need their folder with config.json")
    if is_difference(tensors):
        if base_unet is None:
            raise ControlNetError(
                f"{path.name}: a difference ControlNet needs a model: load it with DiffControlNetLoader"
            )
        tensors = undo_difference(tensors, base_unet)
    return controlnet_from_ldm(tensors, path.name)


def _load_diffusers_folder(folder: Path) -> nn.Module:
    """A diffusers ControlNet folder; a union ControlNet (ControlNet++ / ProMax: its class name says Union, or its
    config counts control types) comes back as `ControlTypes` with no type chosen yet."""
    diffusers = offline.diffusers()
    from safetensors.torch import load_file

    config_path = folder / "config.json"
    weights = next((folder / n for n in ("diffusion_pytorch_model.safetensors",) if (folder / n).is_file()), None)
    if not config_path.is_file() or weights is None:
        raise ControlNetError(f"{folder.name}: a diffusers ControlNet folder needs config.json and a .safetensors")
    raw = json.loads(config_path.read_text())
    if raw.get("_class_name") in ("SD3ControlNetModel", "FluxControlNetModel"):
        from diffusion.dit_controlnet import load_dit_controlnet

        return load_dit_controlnet(load_file(str(weights)), folder.name)
    union = "union" in str(raw.get("_class_name", "")).lower() or "num_control_type" in raw
    config = {k: v for k, v in raw.items() if not k.startswith("_")}
    with torch.device("meta"):
        model = (diffusers.ControlNetUnionModel if union else diffusers.ControlNetModel)(**config)
    model.load_state_dict(load_file(str(weights)), assign=True, strict=True)
    model = model.float().eval().requires_grad_(False)
    return ControlTypes(model, ()) if union else model


class ControlTypes(nn.Module):
    """A ControlNet with the control types its hint should be read as (SetUnionControlNetType). A union
    ControlNet gets them as its one-hot type input and task embeddings, or, with none ("auto"), reads its hint
    untyped; a plain ControlNet takes no type and runs as it is. The wrapped ControlNet is shared, never changed."""

    def __init__(self, net: nn.Module, types: tuple[int, ...]) -> None:
        super().__init__()
        self.net = net
        self.types = tuple(types)

    @property
    def union(self) -> bool:
        return hasattr(self.net, "task_embedding")

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        *,
        encoder_hidden_states: torch.Tensor,
        controlnet_cond: torch.Tensor,
        conditioning_scale: float = 1.0,
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,
        return_dict: bool = False,
    ) -> Any:
        """The ControlNet's (down residuals, mid residual); `return_dict` passes on to a typed or plain net, as
        diffusers' call takes it (Loom's sampler asks for the tuple)."""
        args = {"encoder_hidden_states": encoder_hidden_states, "added_cond_kwargs": added_cond_kwargs}
        if not self.union:
            return self.net(
                sample, timestep, controlnet_cond=controlnet_cond, conditioning_scale=conditioning_scale, **args,
                return_dict=return_dict,
            )  # fmt: skip
        count = int(self.net.config.num_control_type)
        if not self.types:
            return self._untyped(sample, timestep, controlnet_cond, conditioning_scale, count, args)
        if max(self.types) >= count:
            raise ControlNetError(
                f"this union ControlNet knows {count} control types; "
                f"{UNION_CONTROL_TYPES[max(self.types)]!r} is not one"
            )
        control_type = torch.zeros(sample.shape[0], count, device=sample.device, dtype=sample.dtype)
        control_type[:, list(self.types)] = 1
        return self.net(
            sample, timestep, controlnet_cond=[controlnet_cond] * len(self.types), control_type=control_type,
            control_type_idx=list(self.types), conditioning_scale=[conditioning_scale] * len(self.types), **args,
            return_dict=return_dict,
        )  # fmt: skip

    def _untyped(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        controlnet_cond: torch.Tensor,
        conditioning_scale: float,
        count: int,
        args: dict[str, Any],
    ) -> Residuals:
        """A union ControlNet with no type chosen ("auto"), as the reference runs it: an all-zero type vector,
        and the hint embedded as a plain ControlNet's, added to the input convolution's output without the
        task embedding and the transformer that fuses typed hints."""
        hint = self.net.controlnet_cond_embedding(controlnet_cond)
        handle = self.net.conv_in.register_forward_hook(lambda _module, _args, out: out + hint)
        control_type = torch.zeros(sample.shape[0], count, device=sample.device, dtype=sample.dtype)
        try:
            down, mid = self.net(
                sample, timestep, controlnet_cond=[], control_type=control_type, control_type_idx=[],
                conditioning_scale=[], **args, return_dict=False,
            )  # fmt: skip
        finally:
            handle.remove()
        return [d * conditioning_scale for d in down], mid * conditioning_scale


def with_control_type(net: nn.Module, type_name: str) -> ControlTypes:
    """`net` (or the ControlNet it wraps) set to read its hint as `type_name` ("auto": no type). A DiT ControlNet
    (diffusion.dit_controlnet) makes its own copy."""
    base = net.net if isinstance(net, ControlTypes) else net
    own = getattr(base, "with_control_type", None)
    if own is not None:
        return own(type_name)
    if type_name == "auto":
        return ControlTypes(base, ())
    if type_name not in UNION_CONTROL_TYPES:
        raise ControlNetError(
            f"unknown control type {type_name!r}; expected auto or one of {', '.join(UNION_CONTROL_TYPES)}"
        )
    return ControlTypes(base, (UNION_CONTROL_TYPES.index(type_name),))


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
    source: str = "ControlNetApplyAdvanced"  # the node that applied it, for errors raised while sampling
    _hints: dict[tuple[Any, ...], torch.Tensor] = field(default_factory=dict, repr=False)

    def chained(self, previous: ControlHint | None) -> ControlHint:
        """This control put on top of another chain (a fresh object: applied conditionings are never mutated)."""
        return replace(self, previous=previous, _hints={})

    def active(self, step_percent: float) -> bool:
        """Acts from start_percent up to (not including) end_percent of the schedule; end 1.0 means to the end."""
        if self.strength == 0.0 or step_percent < self.start_percent:
            return False
        return step_percent < self.end_percent or self.end_percent >= 1.0

    def hint(self, x: torch.Tensor, cond_indices: Sequence[int] | None, crop: Crop | None = None) -> torch.Tensor:
        """The hint image resized to the latent's size times 8, one per row of `x`, as [B, C, H, W].

        With `crop` (x is that part of a bigger latent) the hint is sized for the whole latent and cut alike."""
        height, width, y0, y1, x0, x1 = crop or (x.shape[-2], x.shape[-1], 0, x.shape[-2], 0, x.shape[-1])
        size = (height * 8, width * 8)
        key = (size, x.device, x.dtype)
        image = self._hints.get(key)
        if image is None:
            image = resize_cover(self.image.movedim(-1, 1), size).to(x.device, x.dtype)
            self._hints[key] = image
        rows = list(cond_indices) if cond_indices is not None else list(range(x.shape[0]))
        return image[[r % image.shape[0] for r in rows], :, y0 * 8 : y1 * 8, x0 * 8 : x1 * 8]

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
    ) -> Residuals | None:
        """This ControlNet's residuals for one UNet call, or None outside its range or at strength 0; `crop` when
        the call predicts an area of the latent (see `hint`). `model`: the sampled model, a U-Net one."""
        if getattr(model, "prediction", None) == "flow":
            raise ControlNetError(
                f"{self.source}: this is a U-Net ControlNet (SD 1.x/2.x/SDXL); it cannot guide a {model.family} "
                f"transformer: load a {model.family} ControlNet"
            )
        if not self.active(step_percent):
            return None
        net = self.net
        param = next(net.parameters())
        if param.device != x.device:  # loaded on the CPU; follows the latent to the compute device once
            net.to(x.device)
        dtype = param.dtype
        hint = self.hint(x, cond_indices, crop)
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


def _map(function: Any, tree: Any) -> Any:
    """`function` over the tensors of a nest of lists and tuples (residuals)."""
    if isinstance(tree, torch.Tensor):
        return function(tree)
    return type(tree)(_map(function, part) for part in tree)


def _sum(a: Any, b: Any) -> Any:
    """Two residual nests added leaf by leaf; an empty list (a DiT ControlNet without single blocks) adds nothing."""
    if isinstance(a, torch.Tensor):
        return a + b
    if not a or not b:
        return a or b
    return type(a)(_sum(x, y) for x, y in zip(a, b, strict=True))


def chain_residuals(control: Any, *args: Any, **kwargs: Any) -> Any:
    """The summed residuals of a chain of controls, each link called as `residuals(*args, **kwargs)`; None when no
    link acts at this step. U-Net links give (down, mid), DiT links (joint blocks, single blocks)."""
    total = None
    while control is not None:
        out = control.residuals(*args, **kwargs)
        if out is not None:
            total = out if total is None else _sum(total, out)
        control = getattr(control, "previous", None)
    return total


def add_rows(total: Any, out: Any, rows: Sequence[int], batch: int) -> Any:
    """Residuals `out` of some `rows` of a batch of `batch` rows added into `total` (None: nothing yet)."""

    def spread(r: torch.Tensor) -> torch.Tensor:
        full = r.new_zeros(batch, *r.shape[1:])
        full[list(rows)] = r
        return full

    spread_out = _map(spread, out)
    return spread_out if total is None else _sum(total, spread_out)


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


def inpaint_hint(net: nn.Module, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The hint of an inpainting ControlNet: a ControlNet whose hint has one channel more than the image takes
    the image with the masked part blacked out plus the kept area (1 - mask) as that channel; any other ControlNet
    gets the image unchanged. IMAGE [B, H, W, C], MASK [B, H, W] or [H, W] (1 = repaint)."""
    base = net.net if isinstance(net, ControlTypes) else net
    if getattr(base.config, "conditioning_channels", None) != image.shape[-1] + 1:
        return image
    keep = 1.0 - mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float()
    keep = F.interpolate(keep, size=image.shape[1:3], mode="bilinear", align_corners=False).round()
    keep = keep.movedim(1, -1).to(image)
    if keep.shape[0] != image.shape[0]:
        keep = keep.repeat(math.ceil(image.shape[0] / keep.shape[0]), 1, 1, 1)[: image.shape[0]]
    return torch.cat([image * keep, keep], dim=-1)
