"""ControlNetLoader, DiffControlNetLoader, ControlNetApply, ControlNetApplyAdvanced and ControlNetApplySD3;
SetUnionControlNetType (the control type a union ControlNet reads its hint as) and ControlNetInpaintingAliMamaApply
(image and mask hints).

Applying a ControlNet returns new conditioning pairs whose dict holds a `ControlHint` under "control", chained on top
of any control already there; the sampler sums the chain's residuals at each step. U-Net ControlNets take the image
as their hint; FLUX and SD3 ControlNets (diffusion.dit_controlnet) take it VAE-encoded, so they need the vae input.
"""

from __future__ import annotations

from typing import Any

from diffusion.names import UNION_CONTROL_TYPES
from engine.context import NodeContext
from engine.native import Combo, Float, Out, Socket, node
from nodes.shared import file_input, model_file, model_files

COND = Socket("CONDITIONING")


@node(
    category="loaders",
    outputs=[Out("CONTROL_NET")],
    display_name="Load ControlNet Model",
    fingerprint=file_input("controlnet", "control_net_name"),
)
def ControlNetLoader(control_net_name: str = Combo(model_files("controlnet")), *, ctx: NodeContext) -> tuple:
    """Load a ControlNet: a U-Net one (single LDM-layout file, or a diffusers folder's weights file next to its
    config.json), or a FLUX / SD3 one (told apart from its tensor names)."""
    from diffusion.controlnet import load_controlnet

    return (load_controlnet(model_file(ctx.env, "controlnet", control_net_name, "control_net_name")),)


@node(
    category="loaders",
    outputs=[Out("CONTROL_NET")],
    display_name="Load ControlNet Model (diff)",
    fingerprint=file_input("controlnet", "control_net_name"),
)
def DiffControlNetLoader(
    model: Any = Socket("MODEL"),
    control_net_name: str = Combo(model_files("controlnet")),
    *,
    ctx: NodeContext,
) -> tuple:
    """Load a difference ControlNet (weights stored relative to the UNet it was trained from), completed with this
    model's UNet weights; a full ControlNet file loads as with ControlNetLoader."""
    from diffusion.controlnet import load_controlnet

    path = model_file(ctx.env, "controlnet", control_net_name, "control_net_name")
    return (load_controlnet(path, base_unet=model.unet),)


def apply_control(
    conditioning: list,
    control_net: Any,
    image: Any,
    strength: float,
    start: float,
    end: float,
    vae: Any = None,
    source: str = "ControlNetApplyAdvanced",
) -> list:
    """New pairs, each with this ControlNet chained on top of the control it already had. `source` (the applying
    node) names errors that only sampling can find (a ControlNet of another model family)."""
    from diffusion.controlnet import ControlHint
    from diffusion.dit_controlnet import DiTControlNet, LatentControlHint

    if strength == 0.0:
        return conditioning
    if isinstance(control_net, DiTControlNet):
        if vae is None:
            raise ValueError(
                f"vae: {source}: this {control_net.family.upper()} ControlNet reads a VAE-encoded hint; connect the "
                "model's VAE (Apply ControlNet's vae input, or Apply Controlnet with VAE)"
            )
        hint: ControlHint = LatentControlHint(control_net, image, strength, start, end, source=source, vae=vae)
    else:
        hint = ControlHint(control_net, image, strength, start, end, source=source)
    return [[tensor, {**extras, "control": hint.chained(extras.get("control"))}] for tensor, extras in conditioning]


@node(
    category="conditioning/controlnet",
    outputs=[Out("CONDITIONING")],
    display_name="Apply ControlNet (OLD)",
    deprecated=True,
)
def ControlNetApply(
    conditioning: Any = COND,
    control_net: Any = Socket("CONTROL_NET"),
    image: Any = Socket("IMAGE"),
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01),
) -> tuple:
    """Guide the sampler with a ControlNet and a hint image (resized to the latent's size times 8)."""
    return (apply_control(conditioning, control_net, image, strength, 0.0, 1.0, source="ControlNetApply"),)


@node(
    category="conditioning/controlnet",
    outputs=[Out("CONDITIONING", "positive"), Out("CONDITIONING", "negative")],
    display_name="Apply ControlNet",
)
def ControlNetApplyAdvanced(
    positive: Any = COND,
    negative: Any = COND,
    control_net: Any = Socket("CONTROL_NET"),
    image: Any = Socket("IMAGE"),
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01),
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001),
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001),
    vae: Any = Socket("VAE", optional=True),
) -> tuple:
    """ControlNet on both conditionings, acting from start_percent to end_percent of the schedule. `vae` encodes
    the hint of FLUX and SD3 ControlNets; U-Net ControlNets use the image as it is."""
    args = (control_net, image, strength, start_percent, end_percent, vae)
    return apply_control(positive, *args), apply_control(negative, *args)


@node(
    category="conditioning/controlnet",
    outputs=[Out("CONDITIONING", "positive"), Out("CONDITIONING", "negative")],
    display_name="Apply Controlnet with VAE",
    deprecated=True,
)
def ControlNetApplySD3(
    positive: Any = COND,
    negative: Any = COND,
    control_net: Any = Socket("CONTROL_NET"),
    vae: Any = Socket("VAE"),
    image: Any = Socket("IMAGE"),
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01),
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001),
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001),
) -> tuple:
    """Apply ControlNet with the VAE required, as SD3 workflows wire it: the hint image is VAE-encoded for FLUX
    and SD3 ControlNets."""
    args = (control_net, image, strength, start_percent, end_percent, vae, "ControlNetApplySD3")
    return apply_control(positive, *args), apply_control(negative, *args)


@node(category="conditioning/controlnet", outputs=[Out("CONTROL_NET")])
def SetUnionControlNetType(
    control_net: Any = Socket("CONTROL_NET"), type: str = Combo(("auto", *UNION_CONTROL_TYPES))
) -> tuple:
    """The control type a union ControlNet (ControlNet++ / ProMax) reads its hint as ("auto": none, the hint read
    untyped as the reference does); a plain ControlNet takes no type and is unaffected. Returns a new CONTROL_NET
    sharing the loaded one."""
    from diffusion.controlnet import ControlNetError, with_control_type

    try:
        return (with_control_type(control_net, type),)
    except ControlNetError as exc:
        raise ValueError(f"type: {exc}") from exc


@node(category="conditioning/controlnet", outputs=[Out("CONDITIONING", "positive"), Out("CONDITIONING", "negative")])
def ControlNetInpaintingAliMamaApply(
    positive: Any = COND,
    negative: Any = COND,
    control_net: Any = Socket("CONTROL_NET"),
    vae: Any = Socket("VAE"),
    image: Any = Socket("IMAGE"),
    mask: Any = Socket("MASK"),
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01),
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001),
    end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001),
) -> tuple:
    """An inpainting ControlNet on both conditionings: a ControlNet made for a mask channel gets the image with the
    masked part blacked out plus the mask; any other acts as with Apply ControlNet (`vae` encodes the hint of
    FLUX and SD3 ControlNets)."""
    from diffusion.controlnet import inpaint_hint

    hint = inpaint_hint(control_net, image, mask)
    args = (control_net, hint, strength, start_percent, end_percent, vae, "ControlNetInpaintingAliMamaApply")
    return apply_control(positive, *args), apply_control(negative, *args)
