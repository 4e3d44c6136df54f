"""What hooks cost on the tiny SD 1.x model (random weights; nothing is downloaded).

Prints the seconds of one 8-step euler run (CFG, 64x64) with: the plain model, the model with a LoRA loaded once,
the same LoRA as a hook on both prompts at a constant strength, as a hook on the positive only (two UNet calls per
step), and as a hook with 5 interpolated keyframes; and how many patched copies each hooked run made.

    python bench/hooks.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diffusion.hooks
from diffusion.hooks import HookGroup, Keyframe, Keyframes, LoraWeights, WeightHook, interpolate
from diffusion.loader import load_checkpoint
from diffusion.lora import apply_patches, match_lora
from diffusion.memory import ModelManager
from diffusion.sampling import SampleRequest, sample
from diffusion.tiny import build_tiny, tiny_spec, write_checkpoint

STEPS = 8
REPEATS = 3


def lora_for(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    sd: dict[str, torch.Tensor] = {}
    for name, layer in unet.named_modules():
        if isinstance(layer, torch.nn.Linear | torch.nn.Conv2d):
            kernel = tuple(layer.weight.shape[2:])
            stem = "lora_unet_" + name.replace(".", "_")
            sd[stem + ".lora_down.weight"] = torch.randn(4, layer.weight.shape[1], *kernel, generator=gen) * 0.05
            sd[stem + ".lora_up.weight"] = torch.randn(layer.weight.shape[0], 4, *((1,) * len(kernel)), generator=gen)
    return sd


def timed(request: SampleRequest) -> float:
    """The median of a few runs, after one that warms caches up."""
    sample(request)
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        sample(request)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    manager = ModelManager.create(force_cpu=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_checkpoint(Path(tmp) / "tiny-sd1.safetensors", build_tiny(tiny_spec("sd1"), seed=7))
        ckpt = load_checkpoint(path, manager)
    assert ckpt.model is not None and ckpt.clip is not None
    model, clip = ckpt.model, ckpt.clip
    p, n = clip.encode("a red fox"), clip.encode("blurry")
    pos, neg = [[p.cond, {"pooled_output": p.pooled}]], [[n.cond, {"pooled_output": n.pooled}]]
    lora = lora_for(model.unet)

    def request(m: Any, positive: Any, negative: Any) -> SampleRequest:
        latent = {"samples": torch.zeros(1, 4, 8, 8)}
        return SampleRequest(m, 3, STEPS, 5.0, "euler", "normal", positive, negative, latent)

    def hooked(conditioning: Any, group: HookGroup) -> Any:
        return [[t, {**e, "hooks": group}] for t, e in conditioning]

    patched = apply_patches({"unet": model.unet}, match_lora(lora, {"unet": model.unet}).patches, {"unet": 1.0})
    constant = HookGroup((WeightHook(LoraWeights("bench", lora), 1.0, 1.0),))
    starts = interpolate(0.0, 1.0, 5, "linear")
    strengths = interpolate(1.0, 0.2, 5, "ease_in_out")
    frames = [Keyframe(s, p) for p, s in zip(starts, strengths, strict=True)]
    keyframed = constant.with_keyframes(Keyframes().add(*frames))

    copies = {"n": 0}
    real = diffusion.hooks.patch_copies

    def counting(*args: Any, **kwargs: Any) -> Any:
        copies["n"] += 1
        return real(*args, **kwargs)

    diffusion.hooks.patch_copies = counting  # type: ignore[assignment]
    cases = [
        ("plain model", request(model, pos, neg), None),
        ("LoRA loaded once", request(model.with_unet(patched["unet"]), pos, neg), None),
        ("hook on both prompts", request(model, hooked(pos, constant), hooked(neg, constant)), constant),
        ("hook on the positive", request(model, hooked(pos, constant), neg), constant),
        ("hook, 5 keyframes", request(model, hooked(pos, keyframed), hooked(neg, keyframed)), keyframed),
    ]
    for label, req, group in cases:
        copies["n"] = 0
        seconds = timed(req)
        made = f", {copies['n'] // (REPEATS + 1)} patched copies per run" if group is not None else ""
        print(f"{label:24s} {seconds * 1000:8.1f} ms per {STEPS}-step run{made}")


if __name__ == "__main__":
    main()
