"""GPU check: txt2img through Loom on the full-size SD 1.5 and SDXL UNet architectures with random weights.

For each family, precision and size, prints: checkpoint load time (Loom's loader on a file written to a temp dir)
and the move to the device; seconds per sampling step (batch 1, CFG, euler) through Loom's sampler against a bare
diffusers UNet forward of the same model at the same batch (Loom's overhead; target under 3%); peak device memory
while sampling; and what the memory manager does when the device-memory budget is smaller than the UNet.
diffusion/memory.py's ModelManager moves whole models on and off the device (it has no block-level offload), so
the budget run reports what that whole-model load did: completed, or the error it ended with.

The SDXL file's text encoders have the real widths (768 and 1280, so the UNet's context and pooled inputs match)
but two layers each: the figures are about the UNet. SD 1.5's file is full-size throughout (bench/model_layer.py).

    python bench/gpu_check.py [--device cuda] [--families sd15,sdxl] [--precisions fp16,bf16] [--sizes 512 1024]
    python bench/gpu_check.py --device cpu --tiny --precisions fp32     # the tiny architectures, as the tests run it
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.model_layer import VAE, peak_rss_gb, write_full_checkpoint
from diffusion.detect import UNetArch
from diffusion.loader import Checkpoint, load_checkpoint
from diffusion.memory import ModelManager, module_nbytes
from diffusion.sampling import SampleRequest, sample
from diffusion.tiny import TEXT_PREFIXES, TinySpec, build_tiny, text_arch, tiny_spec, write_checkpoint

FAMILIES = {"sd15": "sd1", "sdxl": "sdxl"}
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # `--precision`
SDXL_UNET = UNetArch(
    4, 4, (320, 640, 1280), 2, (False, True, True), (0, 2, 10), True, 10, 2048, True, 2816, (5, 10, 20)
)
PROMPT = "a photo of a cat"


def sdxl_spec() -> TinySpec:
    """Full-size SDXL UNet and VAE, with two-layer text encoders of the real widths."""
    texts = tuple(
        text_arch("sdxl", i, width, prefix)
        for i, (width, prefix) in enumerate(zip((768, 1280), TEXT_PREFIXES["sdxl"], strict=True))
    )
    return TinySpec("sdxl", SDXL_UNET, replace(VAE, scaling_factor=0.13025), texts)


def write_model(family: str, tiny: bool, path: Path) -> None:
    """A random-weight single-file checkpoint of `family` at `path` (fp16 at full size, as released files are)."""
    if tiny:
        write_checkpoint(path, build_tiny(tiny_spec(family)))
    elif family == "sd1":
        write_full_checkpoint(path)
    else:
        write_checkpoint(path, build_tiny(sdxl_spec()), torch.float16)
    gc.collect()


def synced(fn: Callable[[], object], device: torch.device, repeat: int = 1) -> float:
    """Mean seconds per call, waiting for the device's queued work after each call."""
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeat


@dataclass(frozen=True)
class Prompt:
    positive: list
    negative: list
    context: torch.Tensor  # [2, 77, C]: positive and negative rows, as the sampler batches them
    pooled: torch.Tensor | None  # [2, P] for SDXL


def encode(ckpt: Checkpoint) -> Prompt:
    pos, neg = ckpt.clip.encode(PROMPT), ckpt.clip.encode("")
    opts = [{} if e.pooled is None else {"pooled_output": e.pooled} for e in (pos, neg)]
    pooled = None if pos.pooled is None else torch.cat([pos.pooled, neg.pooled])
    return Prompt([[pos.cond, opts[0]]], [[neg.cond, opts[1]]], torch.cat([pos.cond, neg.cond]), pooled)


def bare_forward(ckpt: Checkpoint, prompt: Prompt, size: int, steps: int) -> float:
    """Seconds per diffusers UNet forward on the batch Loom's CFG step runs (positive and negative rows)."""
    manager, unet = ckpt.model.manager, ckpt.model.unet
    dev, dtype, h = manager.device, manager.dtype, size // 8
    x = torch.randn(2, 4, h, h, device=dev, dtype=dtype)
    t = torch.tensor([500.0, 500.0], device=dev, dtype=dtype)
    ctx = prompt.context.to(dev, dtype)
    kwargs = {}
    if prompt.pooled is not None:
        ids = torch.tensor([[size, size, 0, 0, size, size]] * 2, device=dev, dtype=dtype)
        kwargs["added_cond_kwargs"] = {"text_embeds": prompt.pooled.to(dev, dtype), "time_ids": ids}
    with torch.no_grad():
        unet(x, t, encoder_hidden_states=ctx, **kwargs)  # warm-up
        return synced(lambda: unet(x, t, encoder_hidden_states=ctx, **kwargs), dev, repeat=steps)


def request(ckpt: Checkpoint, prompt: Prompt, size: int, steps: int) -> SampleRequest:
    latent = {"samples": torch.zeros(1, 4, size // 8, size // 8)}
    return SampleRequest(ckpt.model, 1, steps, 7.0, "euler", "normal", prompt.positive, prompt.negative, latent)


def memory_line(device: torch.device) -> str:
    if device.type == "cuda":
        return f"peak VRAM {torch.cuda.max_memory_allocated(device) / 1e9:.2f} GB"
    return f"peak RSS {peak_rss_gb():.2f} GB (whole process so far)"


def budget_run(ckpt: Checkpoint, req: SampleRequest) -> str:
    """Sample with the device-memory budget at half the UNet's weights; say what happened."""
    manager, unet = ckpt.model.manager, ckpt.model.unet
    dev = manager.device
    if dev.type != "cuda":
        return f"skipped on {dev.type}: no device memory to limit"
    weights = module_nbytes(unet)
    manager.unload_all()
    gc.collect()
    torch.cuda.empty_cache()
    budget = weights // 2
    torch.cuda.set_per_process_memory_fraction(budget / torch.cuda.get_device_properties(dev).total_memory, dev)
    try:
        seconds = synced(lambda: sample(req), dev)
        outcome = f"completed in {seconds:.2f} s"
    except torch.cuda.OutOfMemoryError as exc:
        outcome = f"failed: out of memory ({str(exc).splitlines()[0][:160]})"
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, dev)
    places = sorted({str(p.device) for p in unet.parameters()})
    return (
        f"budget {budget / 1e9:.2f} GB < UNet weights {weights / 1e9:.2f} GB: whole-model offload (ModelManager "
        f"has no block-level offload); the run {outcome}; UNet parameters now on {', '.join(places)}"
    )


def check(path: Path, family: str, precision: str, args: argparse.Namespace) -> None:
    manager = ModelManager.create(force_cpu=args.device == "cpu", precision=precision)
    dev = manager.device
    label = f"{family} {precision} ({str(manager.dtype).removeprefix('torch.')} on {dev})"
    holder: dict[str, Checkpoint] = {}
    load = synced(lambda: holder.setdefault("ckpt", load_checkpoint(path, manager)), dev)
    ckpt = holder["ckpt"]
    move = synced(lambda: manager.load([ckpt.model.unet]), dev)
    weights = module_nbytes(ckpt.model.unet) / 1e9
    print(f"{label}: load_checkpoint {load:.2f} s, UNet to {dev.type} {move:.2f} s (UNet weights {weights:.3f} GB)")
    prompt = encode(ckpt)
    for size in args.sizes:
        req = request(ckpt, prompt, size, args.steps)
        sample(request(ckpt, prompt, size, 1))  # warm-up
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        loom = synced(lambda req=req: sample(req), dev) / args.steps
        mem = memory_line(dev)
        bare = bare_forward(ckpt, prompt, size, args.steps)
        print(
            f"{label} {size}x{size}, {args.steps} steps: Loom {loom:.4f} s/step, bare diffusers UNet forward "
            f"{bare:.4f} s/step (Loom's overhead {100 * (loom / bare - 1):+.1f}%); {mem}"
        )
    print(f"{label} budget run: {budget_run(ckpt, request(ckpt, prompt, min(args.sizes), args.steps))}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny architectures (diffusion/tiny.py), for the CPU")
    parser.add_argument("--families", default="sd15,sdxl", help="comma-separated: sd15, sdxl")
    parser.add_argument("--precisions", default="fp16,bf16", help="comma-separated: auto, fp32, bf16, fp16")
    parser.add_argument("--sizes", type=int, nargs="+", help="pixel sizes (default 512 1024; 64 with --tiny)")
    parser.add_argument("--steps", type=int, help="sampling steps (default 20; 2 with --tiny)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    for name in args.families:
        if name not in FAMILIES:
            parser.error(f"--families: unknown family {name!r}; expected {', '.join(FAMILIES)}")
    for name in args.precisions:
        if name not in PRECISIONS:
            parser.error(f"--precisions: unknown precision {name!r}; expected {', '.join(PRECISIONS)}")
    args.sizes = args.sizes or ([64] if args.tiny else [512, 1024])
    args.steps = args.steps or (2 if args.tiny else 20)
    if any(s <= 0 or s % 8 for s in args.sizes) or args.steps <= 0:
        parser.error("--sizes must be positive multiples of 8 and --steps positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_grad_enabled(False)
    print(f"device {args.device}, threads {torch.get_num_threads()}, {'tiny' if args.tiny else 'full-size'} models")
    if args.device == "cuda":
        print(f"GPU {torch.cuda.get_device_name()}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families:
            family = FAMILIES[name]
            path = Path(tmp) / f"{name}-random.safetensors"
            start = time.perf_counter()
            write_model(family, args.tiny, path)
            took = time.perf_counter() - start
            print(f"{name}: wrote {path.stat().st_size / 1e9:.3f} GB random-weight checkpoint in {took:.1f} s")
            for precision in args.precisions:
                check(path, name, precision, args)
                gc.collect()  # the checkpoint of the last check, before the next loads
                if args.device == "cuda":
                    torch.cuda.empty_cache()
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
