"""Model-layer benchmark on the full-size SD 1.5 architecture with random weights (written here to a temp dir).

Prints, for each `--precision` (each in a process of its own): checkpoint load time after the libraries' one-time
imports (which `serve` does at start; printed apart) against a plain safetensors read + cast to fp32 of the file,
the first and the following sampling steps (batch 1, CFG) through Loom's sampler against a bare diffusers UNet
forward, VAE decode time, peak RSS; then the PSNR of each precision's image against fp32's.

`--channels-last fp32` adds runs of those precisions with the UNet in channels-last memory format (compared with the
same precision's plain run, and by PSNR with fp32's image; a CPU's bf16 UNet is channels-last already).
`--checkpoint FILE` uses that file instead of writing one.

    python bench/model_layer.py [--sizes 256 512] [--steps 2] [--precisions auto fp32 bf16] [--channels-last fp32]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffusion import offline
from diffusion.convert import text_table, to_ldm, unet_table, vae_table
from diffusion.detect import UNET_PREFIX, VAE_PREFIX, TextArch, UNetArch, VAEArch
from diffusion.loader import build_text, build_unet, build_vae, canonical_text_keys, load_checkpoint
from diffusion.memory import ModelManager
from diffusion.sampling import SampleRequest, sample

UNET = UNetArch(
    4, 4, (320, 640, 1280, 1280), 2, (True, True, True, False), (1, 1, 1, 0), True, 1, 768, False, None, (8, 8, 8, 8)
)
VAE = VAEArch(3, 4, (128, 256, 512, 512), 2, 0.18215)
TEXT = TextArch(
    "clip_l", "cond_stage_model.", "hf", 768, 12, 3072, 12, 49408, 77, None, "quick_gelu", 49407, -1, True, False
)


def peak_rss_gb() -> float:
    """This process' peak RSS: VmHWM where Linux gives it (ru_maxrss would include the peak of the parent that
    started a `--one` child, as Linux keeps it across exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def random_like(module: torch.nn.Module, gen: torch.Generator) -> dict[str, torch.Tensor]:
    out = {}
    for key, ref in module.state_dict().items():
        t = torch.randn(tuple(ref.shape), generator=gen) * (0.02 if ref.ndim < 2 else ref.shape[1] ** -0.5)
        out[key] = t.half()
    return out


def write_full_checkpoint(path: Path) -> None:
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    state = dict(to_ldm(random_like(build_unet(UNET, "sd1"), gen), unet_table(UNET), UNET_PREFIX))
    vae_sd = random_like(build_vae(VAE), gen)
    for k, v in vae_sd.items():
        if ".mid_block.attentions.0." in k and k.endswith(".weight") and "group_norm" not in k:
            vae_sd[k] = v[:, :, None, None]
    state.update(to_ldm(vae_sd, vae_table(VAE), VAE_PREFIX))
    text = build_text(TEXT)
    text_sd = random_like(text, gen)
    text_sd = {k: text_sd[k.removeprefix("text_model.")] for k in canonical_text_keys(text)}
    state.update(to_ldm(text_sd, text_table(TEXT), TEXT.prefix))
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


class UNetTimer:
    """Sums the time spent inside the UNet's forward while active (forward hooks), to isolate Loom's own work."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet, self.total, self._start = unet, 0.0, 0.0

    def __enter__(self) -> UNetTimer:
        self._hooks = [
            self.unet.register_forward_pre_hook(self._begin),
            self.unet.register_forward_hook(self._end),
        ]
        return self

    def _begin(self, *_args: object) -> None:
        self._start = time.perf_counter()

    def _end(self, *_args: object) -> None:
        self.total += time.perf_counter() - self._start

    def __exit__(self, *_exc: object) -> None:
        for hook in self._hooks:
            hook.remove()


def timed(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of two images in [0, 1]."""
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def run_precision(
    path: Path, precision: str, sizes: list[int], steps: int, out_dir: Path, channels_last: bool = False
) -> None:
    """One precision in this (fresh) process: load, sample, decode; prints figures, saves the images for PSNR."""
    torch.set_grad_enabled(False)
    manager = ModelManager.create(force_cpu=not torch.cuda.is_available(), precision=precision)
    start = time.perf_counter()  # once per process, and done at `serve` start before any job: not a load's cost
    offline.warm_up_in_background().join()
    imports = time.perf_counter() - start
    start = time.perf_counter()
    ckpt = load_checkpoint(path, manager)
    loaded = time.perf_counter() - start
    label = f"{precision}-cl" if channels_last else precision
    if channels_last:
        ckpt.model.unet.to(memory_format=torch.channels_last)
    weights = {p.dtype for p in ckpt.model.unet.parameters()}
    print(
        f"[{label}] compute {str(manager.dtype).removeprefix('torch.')}, UNet weights "
        f"{', '.join(str(d).removeprefix('torch.') for d in weights)}: library imports {imports:.2f} s (at serve "
        f"start), then load_checkpoint {loaded:.2f} s, "
        f"RSS after load {peak_rss_gb():.2f} GB"
    )
    pos, neg = ckpt.clip.encode("a photo of a cat"), ckpt.clip.encode("")
    positive, negative = [[pos.cond, {}]], [[neg.cond, {}]]
    for size in sizes:
        h = size // 8
        latent = {"samples": torch.zeros(1, 4, h, h)}
        first = timed(
            lambda latent=latent: sample(
                SampleRequest(ckpt.model, 1, 1, 7.0, "euler", "normal", positive, negative, latent)
            )
        )
        req = SampleRequest(ckpt.model, 1, steps, 7.0, "euler", "normal", positive, negative, latent)
        unet = ckpt.model.unet
        with UNetTimer(unet) as inside:
            start = time.perf_counter()
            result = sample(req)
            loom_step = (time.perf_counter() - start) / steps
        unet_step = inside.total / steps
        x = torch.randn(2, 4, h, h, device=manager.device, dtype=manager.dtype)
        ctx = torch.cat([pos.cond, neg.cond]).to(manager.device, manager.dtype)
        t_in = torch.tensor([500.0, 500.0], device=manager.device, dtype=manager.dtype)
        bare = timed(lambda x=x, ctx=ctx, t_in=t_in, unet=unet: unet(x, t_in, encoder_hidden_states=ctx), repeat=steps)
        decode_start = time.perf_counter()
        image = ckpt.vae.decode(result["samples"])
        decode = time.perf_counter() - decode_start
        torch.save(image, out_dir / f"{label}-{size}.pt")
        print(
            f"[{label}] {size}x{size}: first step {first:.3f} s; step {loom_step:.3f} s, of which UNet forward "
            f"{unet_step:.3f} s (Loom's own work {100 * (loom_step / unet_step - 1):+.2f}%); bare UNet forward "
            f"{bare:.3f} s; VAE decode {decode:.3f} s"
        )
    print(f"[{label}] peak RSS {peak_rss_gb():.2f} GB; load average {os.getloadavg()[0]:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[256])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["auto", "fp32", "bf16"])
    parser.add_argument("--channels-last", nargs="*", default=[], metavar="PRECISION")
    parser.add_argument("--checkpoint", type=Path, default=None, help="an SD 1.5 file to use instead of writing one")
    parser.add_argument("--one", nargs=2, metavar=("CHECKPOINT", "OUT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        cl = bool(args.channels_last)
        run_precision(Path(args.one[0]), args.precisions[0], args.sizes, args.steps, Path(args.one[1]), cl)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = args.checkpoint or Path(tmp) / "sd15-random.safetensors"
        if args.checkpoint is None:
            t = timed(lambda: write_full_checkpoint(path))
            print(f"wrote {path.stat().st_size / 1e9:.2f} GB fp16 checkpoint in {t:.1f} s")
        print(f"{path.stat().st_size / 1e9:.2f} GB fp16 checkpoint; threads {torch.get_num_threads()}")
        gc.collect()
        from safetensors.torch import load_file

        plain = timed(lambda: {k: v.float() for k, v in load_file(str(path)).items()})
        print(f"plain safetensors load_file + cast to fp32: {plain:.2f} s")
        runs = [(p, False) for p in args.precisions] + [(p, True) for p in args.channels_last]
        for precision, channels_last in runs:  # a process each, so that each peak RSS is its own
            cmd = [
                sys.executable,
                __file__,
                "--one",
                str(path),
                tmp,
                "--precisions",
                precision,
                "--steps",
                str(args.steps),
                "--sizes",
                *map(str, args.sizes),
                *(["--channels-last", precision] if channels_last else []),
            ]
            subprocess.run(cmd, check=True)
        if "fp32" in args.precisions:
            others = [p for p in args.precisions if p != "fp32"] + [f"{p}-cl" for p in args.channels_last]
            for other in others:
                for size in args.sizes:
                    ref = torch.load(Path(tmp) / f"fp32-{size}.pt")
                    img = torch.load(Path(tmp) / f"{other}-{size}.pt")
                    print(f"PSNR {other} vs fp32 at {size}x{size}: {psnr(ref, img):.1f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
