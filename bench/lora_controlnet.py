"""LoRA and ControlNet costs on the full-size SD 1.5 architecture (random weights; nothing is downloaded).

Prints: the time to match and apply one rank-16 LoRA (every attention and projection layer of the UNet, kohya
LDM-style names) as a shared copy, the time to remove it (drop the copy), and the seconds per sampling step at
256x256 with classifier-free guidance (batch 2) with no, one and two ControlNets. Slow on a CPU: run by hand, once.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from diffusion.controlnet import ControlHint, chain_residuals
from diffusion.ldm_names import ldm_module_names
from diffusion.lora import apply_patches, match_lora

RANK = 16
STEPS = 2
LATENT = 32  # 256x256 pixels


def random_module(cls: type, **config: object) -> torch.nn.Module:
    """A module of the full architecture filled with small random values (cheaper than its own initialisers)."""
    with torch.device("meta"):
        module = cls(**config)
    module = module.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in (*module.parameters(), *module.buffers()):
            tensor.normal_(0, 0.02)
    return module.eval().requires_grad_(False)


def lora_for(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    ldm = ldm_module_names(unet)
    sd: dict[str, torch.Tensor] = {}
    for name, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear | torch.nn.Conv2d) and (".attentions." in name or "attn" in name):
            stem = "lora_unet_" + ldm[name].replace(".", "_")
            out_dim, in_dim = module.weight.shape[:2]
            sd[stem + ".lora_down.weight"] = torch.randn(RANK, in_dim, *module.weight.shape[2:]) * 0.01
            sd[stem + ".lora_up.weight"] = torch.randn(out_dim, RANK, *((1,) * (module.weight.dim() - 2))) * 0.01
            sd[stem + ".alpha"] = torch.tensor(float(RANK))
    return sd


def bench_lora(unet: torch.nn.Module) -> None:
    sd = lora_for(unet)
    probe = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q.weight
    before = probe.clone()
    t0 = time.perf_counter()
    match = match_lora(sd, {"unet": unet})
    t1 = time.perf_counter()
    patched = apply_patches({"unet": unet}, match.patches, {"unet": 1.0})["unet"]
    t2 = time.perf_counter()
    shared = {id(p) for p in unet.parameters()}
    patched_bytes = sum(p.numel() * p.element_size() for p in patched.parameters() if id(p) not in shared)
    del patched
    gc.collect()
    t3 = time.perf_counter()
    assert torch.equal(probe, before) and not match.unmapped
    print(f"LoRA rank {RANK}: {len(match.patches)} layers, {len(sd)} tensors")
    print(f"  match keys to layers   {t1 - t0:7.3f} s")
    print(f"  apply (shared copy)    {t2 - t1:7.3f} s")
    print(f"  remove (drop the copy) {t3 - t2:7.3f} s")
    print(f"  new weights in copy    {patched_bytes / 2**20:7.1f} MiB (the rest is shared; base unchanged)")


def step_time(unet: torch.nn.Module, control: ControlHint | None) -> float:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, LATENT, LATENT, generator=gen)
    context = torch.randn(2, 77, 768, generator=gen)
    t = torch.tensor([500.0, 500.0])
    times = []
    with torch.inference_mode():
        for _ in range(STEPS + 1):
            start = time.perf_counter()
            res = chain_residuals(control, x, t, context, 0.5, [0, 1])
            kwargs = {}
            if res is not None:
                kwargs = {"down_block_additional_residuals": res[0], "mid_block_additional_residual": res[1]}
            unet(x, t, encoder_hidden_states=context, **kwargs)
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    from diffusers import ControlNetModel, UNet2DConditionModel

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    start = time.perf_counter()
    unet = random_module(UNet2DConditionModel, cross_attention_dim=768)
    print(
        f"built SD 1.5 UNet ({sum(p.numel() for p in unet.parameters()) / 1e6:.0f} M params) "
        f"in {time.perf_counter() - start:.1f} s"
    )
    bench_lora(unet)
    net = random_module(ControlNetModel, cross_attention_dim=768)
    image = torch.rand(1, LATENT * 8, LATENT * 8, 3)
    one = ControlHint(net, image)
    two = ControlHint(net, image, strength=0.5).chained(one)
    base = step_time(unet, None)
    with_one = step_time(unet, one)
    with_two = step_time(unet, two)
    print(f"sampling step at {LATENT * 8}x{LATENT * 8}, batch 2 (CFG), median of {STEPS}:")
    print(f"  no ControlNet   {base:6.2f} s/step")
    print(f"  one ControlNet  {with_one:6.2f} s/step  (+{100 * (with_one / base - 1):.0f}%)")
    print(f"  two ControlNets {with_two:6.2f} s/step  (+{100 * (with_two / base - 1):.0f}%)")


if __name__ == "__main__":
    main()
