"""Small native nodes shaped like a diffusion pipeline, so workflow-file tests need no built-in nodes."""

from __future__ import annotations

from engine.native import Combo, Float, Int, Out, Socket, String, node
from engine.registry import NodeRegistry


@node(outputs=[Out("MODEL", "model"), Out("CLIP", "clip")])
def Loader(ckpt_name=Combo(["tiny.safetensors", "other.ckpt"])) -> tuple:
    return (ckpt_name, ckpt_name)


@node(outputs=["CONDITIONING"])
def Encode(clip=Socket("CLIP"), text=String("", multiline=True)) -> tuple:
    return (text,)


@node(outputs=["LATENT"])
def Sample(
    model=Socket("MODEL"),
    positive=Socket("CONDITIONING"),
    seed=Int(0, min=0, control_after_generate=True),
    steps=Int(20, min=1),
    cfg=Float(8.0),
    sampler_name=Combo(["euler", "ddim"]),
    denoise=Float(1.0, optional=True),
    latent=Socket("LATENT", optional=True),
) -> tuple:
    return ({"seed": seed, "steps": steps},)


@node(outputs=["LATENT"])
def Scale(samples=Socket("LATENT"), factor=Float(1.5)) -> tuple:
    return (samples,)


@node(outputs=["INT"])
def Number(value=Int(3)) -> tuple:
    return (value,)


@node(output_node=True)
def Save(samples=Socket("LATENT"), filename_prefix=String("out")) -> tuple:
    return ()


NODES = (Loader, Encode, Sample, Scale, Number, Save)


def registry() -> NodeRegistry:
    reg = NodeRegistry()
    reg.add_all(NODES)
    return reg
