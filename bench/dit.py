"""FLUX-architecture figures: load time, seconds per sampling step through Loom against a bare diffusers forward of
the same transformer, and peak RSS.

Writes a random-weight FLUX transformer in the reference layout (by default 2 double + 4 single blocks at the real
hidden size 3072, with FLUX.1-dev's guidance embedding) to a temporary file, loads it the way UNETLoader does
(meta-device build, tensors assigned from the memory map), then times Euler steps at the chosen image size through
Loom's sampler (CFG 1, one transformer call per step) and the same number of calls of the bare diffusers module on
the same packed inputs. Overhead = Loom's step time / bare forward time - 1.
Run: .venv/bin/python bench/dit.py [--hidden 3072] [--double 2] [--single 4] [--size 256] [--steps 4]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffusion.dit_loader import load_diffusion_model  # noqa: E402
from diffusion.flux import FluxArch  # noqa: E402
from diffusion.memory import ModelManager  # noqa: E402
from diffusion.sampling import SampleRequest, sample  # noqa: E402
from diffusion.tiny_dit import flux_file_state  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=3072)
    parser.add_argument("--double", type=int, default=2)
    parser.add_argument("--single", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=256, help="T5 tokens of the prompt")
    args = parser.parse_args()
    torch.manual_seed(0)
    arch = FluxArch("", "reference", 16, args.hidden, 128, args.double, args.single, 4096, 768, True)
    with tempfile.TemporaryDirectory() as tmp:
        from safetensors.torch import save_file

        path = Path(tmp) / "flux-bench.safetensors"
        save_file(flux_file_state(arch), str(path))
        print(f"file: {path.stat().st_size / 2**30:.2f} GiB, {args.double} double + {args.single} single blocks, "
              f"hidden {args.hidden}")  # fmt: skip
        manager = ModelManager.create(force_cpu=not torch.cuda.is_available())
        start = time.perf_counter()
        model = load_diffusion_model(path, manager)
        load_s = time.perf_counter() - start
    device, dtype = manager.device, manager.dtype
    model.manager.load([model.unet])
    latent = torch.zeros(1, 16, args.size // 8, args.size // 8)
    cond = [[torch.randn(1, args.tokens, 4096), {"pooled_output": torch.randn(1, 768), "guidance": 3.5}]]
    request = SampleRequest(model, 0, args.steps, 1.0, "euler", "simple", cond, cond, {"samples": latent})
    sample(SampleRequest(model, 0, 1, 1.0, "euler", "simple", cond, cond, {"samples": latent}))  # warm-up
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    sample(request)
    sync()
    loom_step = (time.perf_counter() - start) / args.steps

    h = w = args.size // 16
    hidden = torch.randn(1, h * w, 64, device=device, dtype=dtype)
    ids = torch.zeros(h * w, 3, device=device)
    ids[:, 1] = torch.arange(h, device=device).repeat_interleave(w)
    ids[:, 2] = torch.arange(w, device=device).repeat(h)
    kwargs = {
        "hidden_states": hidden,
        "encoder_hidden_states": cond[0][0].to(device, dtype),
        "pooled_projections": cond[0][1]["pooled_output"].to(device, dtype),
        "timestep": torch.tensor([0.5], device=device, dtype=dtype),
        "img_ids": ids,
        "txt_ids": torch.zeros(args.tokens, 3, device=device),
        "guidance": torch.tensor([3.5], device=device, dtype=dtype),
    }
    with torch.no_grad():
        model.unet(**kwargs)
        sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            model.unet(**kwargs)
        sync()
    bare_step = (time.perf_counter() - start) / args.steps
    print(f"load: {load_s:.2f} s")
    print(f"loom: {loom_step:.3f} s/step   bare diffusers forward: {bare_step:.3f} s/call   "
          f"overhead: {100 * (loom_step / bare_step - 1):+.1f}%")  # fmt: skip
    print(f"peak RSS: {peak_rss_mib():.0f} MiB   device: {device} {dtype}")


if __name__ == "__main__":
    main()
