"""Which module of Loom's models a LoRA key patches, for the naming schemes LoRA files use in the wild.

- kohya / A1111: `lora_unet_<module with dots as underscores>`, `lora_te_...` (SD 1.x/2.x text encoder),
  `lora_te1_...` / `lora_te2_...` (SDXL's two encoders); the UNet part named after either the diffusers layout
  (`lora_unet_down_blocks_0_attentions_0_...`) or the LDM one (`lora_unet_input_blocks_1_1_proj_in`).
- diffusers / PEFT: dotted names under `unet.`, `text_encoder.`, `text_encoder_2.` (or `base_model.model.`, or
  no prefix), including the older attention-processor form `attn1.processor.to_q_lora`.

Every scheme is reduced to one spelling (dots as underscores) and looked up in a table built from the models
themselves, so any size of a family maps with no per-size list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import nn

from diffusion.ldm_names import ldm_module_names

UNET = "unet"
TE1 = "te1"
TE2 = "te2"

# (key prefix, component, dotted?) in the order they are tried; the longest prefixes first.
_PREFIXES: tuple[tuple[str, str | None, bool], ...] = (
    ("lora_unet_", UNET, False),
    ("lora_te1_", TE1, False),
    ("lora_te2_", TE2, False),
    ("lora_te_", TE1, False),
    # the reference's own spellings (its trainer's LORA_MODEL and its extraction node): LDM names under the model
    ("diffusion_model.", UNET, True),
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
    """A layer to patch: the component (`unet`, `te1`, `te2`) and the module's name inside it."""

    component: str
    module: str


def _flat(name: str) -> str:
    return name.replace(".", "_")


def module_table(component: str, model: nn.Module) -> dict[str, Target]:
    """Flattened name (diffusers spelling, and LDM spelling for UNets) -> Target, for every patchable layer."""
    ldm = ldm_module_names(model) if hasattr(model, "down_blocks") else {}
    table: dict[str, Target] = {}
    for name, module in model.named_modules():
        if not isinstance(module, _PATCHABLE):
            continue
        target = Target(component, name)
        spellings = [name, ldm.get(name)]
        if component != UNET and not name.startswith("text_model."):
            spellings.append(f"text_model.{name}")
        for spelling in spellings:
            if spelling:
                table[_flat(spelling)] = target
    return table


def _normalise_dotted(name: str) -> str:
    """Old diffusers processor names (`attn1.processor.to_q_lora`) -> the layer's own name (`attn1.to_q`)."""
    parts = [p for p in name.split(".") if p != "processor"]
    if parts and parts[-1] in _PROCESSOR_LAYERS:
        parts[-1] = _PROCESSOR_LAYERS[parts[-1]]
    return ".".join(parts)


def resolve(key: str, tables: Mapping[str, Mapping[str, Target]]) -> Target | None:
    """The layer a LoRA module key (without its `.lora_down.weight`-like suffix) patches, or None."""
    prefix, component, dotted = next((p for p in _PREFIXES if key.startswith(p[0])), ("", None, True))
    rest = key[len(prefix) :]
    flat = _flat(_normalise_dotted(rest)) if dotted else rest
    candidates = [component] if component is not None else list(tables)
    for name in candidates:
        target = tables.get(name, {}).get(flat)
        if target is not None:
            return target
    return None
