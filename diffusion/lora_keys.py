"""Which module of Loom's models a LoRA key patches, for the naming schemes LoRA files use in the wild.

- kohya / A1111: `lora_unet_<module with dots as underscores>`, `lora_te_...` (SD 1.x/2.x text encoder),
  `lora_te1_...` / `lora_te2_...` (SDXL's two encoders); the UNet part named after either the diffusers layout
  (`lora_unet_down_blocks_0_attentions_0_...`) or the LDM one (`lora_unet_input_blocks_1_1_proj_in`).
- diffusers / PEFT: dotted names under `unet.`, `text_encoder.`, `text_encoder_2.` (or `base_model.model.`, or
  no prefix), including the older attention-processor form `attn1.processor.to_q_lora`.
- FLUX: kohya's `lora_unet_double_blocks_0_img_attn_qkv` (reference layer names), diffusers/PEFT's
  `transformer.transformer_blocks.0.attn.to_q`, ai-toolkit's `lora_transformer_...`, and the reference layout's
  `diffusion_model.double_blocks.0.img_attn.qkv`. A LoRA on a fused reference layer (qkv, single-block linear1)
  patches the rows of each diffusers layer it feeds (to_q/to_k/to_v/proj_mlp) with the matching rows of its `up`.
- SD3: the same schemes over its reference names (`lora_unet_joint_blocks_0_x_block_attn_qkv`) and diffusers'.

Every scheme is reduced to one spelling (dots as underscores) and looked up in a table built from the models
themselves, so any size of a family maps with no per-size list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from diffusion.flux import FluxArch, Fused, flux_table, reference_layers
from diffusion.ldm_names import ldm_module_names
from diffusion.sd3 import SD3Arch, sd3_table

UNET = "unet"
TE1 = "te1"
TE2 = "te2"

# (key prefix, component, dotted?) in the order they are tried; the longest prefixes first.
_PREFIXES: tuple[tuple[str, str | None, bool], ...] = (
    ("lora_transformer_", UNET, False),
    ("lora_unet_", UNET, False),
    ("lora_te1_", TE1, False),
    ("lora_te2_", TE2, False),
    ("lora_te_", TE1, False),
    ("model.diffusion_model.", UNET, True),
    ("diffusion_model.", UNET, True),
    ("transformer.", UNET, True),
    # the reference's text encoder spelling (its extraction node, its trainer's LORA_MODEL)
    ("text_encoders.clip_l.transformer.", TE1, True),
    ("text_encoders.clip_h.transformer.", TE1, True),
    ("text_encoders.clip_g.transformer.", TE2, True),
    ("unet.", UNET, True),
    ("text_encoder_2.", TE2, True),
    ("text_encoder.", TE1, True),
    ("base_model.model.", None, True),
)

# Old diffusers attention-processor LoRA layer names -> the layer they patch.
_PROCESSOR_LAYERS = {"to_q_lora": "to_q", "to_k_lora": "to_k", "to_v_lora": "to_v", "to_out_lora": "to_out.0"}

# Layers a LoRA patches; norms only take whole-tensor differences (`.diff`, `.diff_b`).
_PATCHABLE = (nn.Linear, nn.Conv2d, nn.Conv1d, nn.LayerNorm, nn.GroupNorm)


@dataclass(frozen=True, slots=True)
class Target:
    """A layer to patch: the component (`unet`, `te1`, `te2`) and the module's name inside it. A layer that is
    part of a fused layer in the file's naming takes `rows` [start, stop) of the LoRA's `up`, its two halves
    swapped when `swap` (FLUX's final modulation stores shift/scale the other way round)."""

    component: str
    module: str
    rows: tuple[int, int] | None = None
    swap: bool = False

    def take(self, up: torch.Tensor) -> torch.Tensor:
        """This layer's rows of a LoRA `up` weight."""
        if self.rows is not None:
            up = up[self.rows[0] : self.rows[1]]
        if self.swap:
            first, second = up.chunk(2, dim=0)
            up = torch.cat([second, first], dim=0)
        return up


Targets = tuple[Target, ...]


def _flat(name: str) -> str:
    return name.replace(".", "_")


def _reference_table(model: nn.Module) -> list[Fused]:
    """The reference <-> diffusers key table of a transformer whose reference layout fuses layers (FLUX, SD3)."""
    config = getattr(model, "config", None)
    if config is not None and "num_single_layers" in config:
        return flux_table(FluxArch.from_config(config))
    if config is not None and "dual_attention_layers" in config:
        return sd3_table(SD3Arch.from_config(config))
    return []


def _fused_names(component: str, model: nn.Module) -> dict[str, Targets]:
    """The reference-layout names of a transformer's layers, each with the diffusers layers it feeds."""
    layers = reference_layers(_reference_table(model))
    return {
        _flat(ref): tuple(Target(component, p.module, p.rows, p.swap) for p in parts) for ref, parts in layers.items()
    }


def module_table(component: str, model: nn.Module) -> dict[str, Targets]:
    """Flattened name (diffusers spelling, the LDM spelling for UNets, the reference one for FLUX) -> the layers
    it patches, for every patchable layer."""
    ldm = ldm_module_names(model) if hasattr(model, "down_blocks") else {}
    table: dict[str, Targets] = {}
    for name, module in model.named_modules():
        if not isinstance(module, _PATCHABLE):
            continue
        targets = (Target(component, name),)
        spellings = [name, ldm.get(name)]
        if component != UNET and not name.startswith("text_model."):
            spellings.append(f"text_model.{name}")
        for spelling in spellings:
            if spelling:
                table[_flat(spelling)] = targets
    return table | _fused_names(component, model)


def _normalise_dotted(name: str) -> str:
    """Old diffusers processor names (`attn1.processor.to_q_lora`) -> the layer's own name (`attn1.to_q`)."""
    parts = [p for p in name.split(".") if p != "processor"]
    if parts and parts[-1] in _PROCESSOR_LAYERS:
        parts[-1] = _PROCESSOR_LAYERS[parts[-1]]
    return ".".join(parts)


def resolve(key: str, tables: Mapping[str, Mapping[str, Targets]]) -> Targets | None:
    """The layers a LoRA module key (without its `.lora_down.weight`-like suffix) patches, or None."""
    prefix, component, dotted = next((p for p in _PREFIXES if key.startswith(p[0])), ("", None, True))
    rest = key[len(prefix) :]
    flat = _flat(_normalise_dotted(rest)) if dotted else rest
    candidates = [component] if component is not None else list(tables)
    for name in candidates:
        targets = tables.get(name, {}).get(flat)
        if targets is not None:
            return targets
    return None
