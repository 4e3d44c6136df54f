"""IP-Adapter's per-step cost on the full-size SD 1.5 architecture (random weights; nothing is downloaded).

Prints the seconds per sampling step at 256x256 with classifier-free guidance (batch 2: one positive, one
negative row) for plain sampling, one IP-Adapter (base variant: 4 image tokens on every cross-attention layer) and
two stacked, with the machine's load while it ran. Slow on a CPU: run by hand, once.

    python bench/ip_adapter.py [--steps N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.lora_controlnet import LATENT, random_module
from diffusion.ip_adapter import (
    IPAdapter,
    IPTokens,
    LinearProjection,
    apply_ip_adapter,
    cross_attention_layers,
    detect_ip_adapter,
)
from diffusion.step import StepInfo, unet_step

CONTEXT = 768
CLIP_DIM = 1024  # ViT-H/14's image embedding
TOKENS = 4


def random_adapter(unet: torch.nn.Module, seed: int) -> IPAdapter:
    """A base-variant SD 1.5 IP-Adapter for `unet` with random weights, described by the public file's shapes."""
    gen = torch.Generator().manual_seed(seed)
    layers = {}
    shapes: dict[str, tuple[int, ...]] = {
        "image_proj.proj.weight": (TOKENS * CONTEXT, CLIP_DIM),
        "image_proj.norm.weight": (CONTEXT,),
    }
    for index, name in cross_attention_layers(unet):
        shape = tuple(unet.get_submodule(name).to_k.weight.shape)
        layers[index] = (torch.randn(shape, generator=gen) * 0.02, torch.randn(shape, generator=gen) * 0.02)
        shapes[f"ip_adapter.{index}.to_k_ip.weight"] = shape
    arch = detect_ip_adapter(shapes, "ip-adapter_sd15.safetensors")
    return IPAdapter(arch, LinearProjection(CLIP_DIM, CONTEXT, TOKENS).eval(), layers)


def step_time(unet: torch.nn.Module, steps: int) -> float:
    """Median seconds of one batch-2 UNet call (after one warm-up call)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, LATENT, LATENT, generator=gen)
    context = torch.randn(2, 77, CONTEXT, generator=gen)
    t = torch.tensor([500.0, 500.0])
    info = StepInfo(0.5, torch.tensor([False, True]), (LATENT, LATENT))
    times = []
    with torch.inference_mode(), unet_step(info):
        for _ in range(steps + 1):
            start = time.perf_counter()
            unet(x, t, encoder_hidden_states=context)
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    from diffusers import UNet2DConditionModel

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed UNet calls per case (after a warm-up)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    unet = random_module(UNet2DConditionModel, cross_attention_dim=CONTEXT)
    print(f"SD 1.5 UNet: {sum(p.numel() for p in unet.parameters()) / 1e6:.0f} M params")
    gen = torch.Generator().manual_seed(1)
    tokens = IPTokens(torch.randn(1, TOKENS, CONTEXT, generator=gen), torch.randn(1, TOKENS, CONTEXT, generator=gen))
    one = apply_ip_adapter(unet, random_adapter(unet, 2), tokens, 1.0)
    two = apply_ip_adapter(one, random_adapter(unet, 3), tokens, 0.5)
    load_before = os.getloadavg()
    base = step_time(unet, args.steps)
    with_one = step_time(one, args.steps)
    with_two = step_time(two, args.steps)
    load_after = os.getloadavg()
    print(f"sampling step at {LATENT * 8}x{LATENT * 8}, batch 2 (CFG), median of {args.steps}:")
    print(f"  plain            {base:6.2f} s/step")
    print(f"  one IP-Adapter   {with_one:6.2f} s/step  (+{100 * (with_one / base - 1):.1f}%)")
    print(f"  two IP-Adapters  {with_two:6.2f} s/step  (+{100 * (with_two / base - 1):.1f}%)")
    print(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after")


if __name__ == "__main__":
    main()
