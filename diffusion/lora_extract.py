"""LoRA files from model differences (what ModelMergeSubtract makes: finetuned minus base), in the key layout the
ecosystem's extraction writes and diffusion.lora reads back: `diffusion_model.<LDM module>` for the UNet and
`text_encoders.<clip_l|clip_g|clip_h>.transformer.<module>` for the text encoders, each with `.lora_up.weight` /
`.lora_down.weight`, or `.diff` (a whole weight) and `.diff_b` (a bias).

Each weight difference is replaced by its best rank-r approximation (truncated SVD, Eckart-Young), the singular
values split evenly between the two factors so half precision holds both; a difference of rank <= r comes back
exact up to float16 rounding. Layers whose difference is zero are left out: they would patch nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from diffusion.ldm_names import ldm_module_names

UNET_PREFIX = "diffusion_model."
TEXT_PREFIX = "text_encoders.{name}.transformer."
LORA_TYPES = ("standard", "full_diff")
# Layers a LoRA file can patch (diffusion.lora_keys): the rest (embeddings, position ids) are not written.
_LAYERS = (nn.Linear, nn.Conv2d, nn.Conv1d, nn.LayerNorm, nn.GroupNorm)


@dataclass(frozen=True)
class ExtractOptions:
    rank: int
    lora_type: str = "standard"  # or "full_diff": every weight difference stored whole
    bias_diff: bool = True  # also store bias differences (and, for "standard", 1-D weight ones)


def low_rank(diff: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(up, down) with up @ down the best rank-`rank` approximation of `diff` viewed as [out, in * kernel]; conv
    weights give a k x k `down` conv and a 1x1 `up` conv, as LoCon files store them."""
    out_dim = diff.shape[0]
    flat = diff.float().reshape(out_dim, -1)
    rank = min(rank, *flat.shape)
    u, s, vh = torch.linalg.svd(flat, full_matrices=False)
    root = s[:rank].sqrt()
    up, down = u[:, :rank] * root, root[:, None] * vh[:rank]
    if diff.ndim == 4:
        return up.reshape(out_dim, rank, 1, 1), down.reshape(rank, *diff.shape[1:])
    return up, down


def _layers(module: nn.Module, names: dict[str, str]) -> Iterator[tuple[str, nn.Module]]:
    for name, layer in module.named_modules():
        if isinstance(layer, _LAYERS) and name in names:
            yield names[name], layer


def extract(module: nn.Module, names: dict[str, str], options: ExtractOptions) -> dict[str, torch.Tensor]:
    """The LoRA tensors of a difference module; `names` maps its layer names to LoRA key stems."""
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for stem, layer in _layers(module, names):
            weight, bias = layer.weight, getattr(layer, "bias", None)
            if weight is not None and bool(weight.any()):
                if options.lora_type == "full_diff" or (weight.ndim < 2 and options.bias_diff):
                    out[f"{stem}.diff"] = weight.detach().half().cpu()
                elif weight.ndim >= 2:
                    up, down = low_rank(weight.detach(), options.rank)
                    out[f"{stem}.lora_up.weight"] = up.half().cpu().contiguous()
                    out[f"{stem}.lora_down.weight"] = down.half().cpu().contiguous()
            if options.bias_diff and bias is not None and bool(bias.any()):
                out[f"{stem}.diff_b"] = bias.detach().half().cpu()
    return out


def unet_stems(unet: nn.Module) -> dict[str, str]:
    """UNet layer name -> `diffusion_model.<LDM name>`."""
    return {name: UNET_PREFIX + ldm for name, ldm in ldm_module_names(unet).items()}


def text_stems(module: nn.Module, encoder_name: str) -> dict[str, str]:
    """Text encoder layer name -> `text_encoders.<encoder>.transformer.<name in the text_model.* naming>`."""
    prefix = TEXT_PREFIX.format(name=encoder_name)
    inner = "" if hasattr(module, "text_model") else "text_model."
    return {name: f"{prefix}{inner}{name}" for name, _ in module.named_modules() if name}
