"""FLUX-architecture figures: load time, seconds per sampling step through Loom against a bare diffusers forward of
the same transformer, and peak RSS.

Writes a random-weight FLUX transformer in the reference layout (by default 2 double + 4 single blocks at the real
hidden size 3072, with FLUX.1-dev's guidance embedding) to a temporary file, loads it the way UNETLoader does
(meta-device build, tensors assigned from the memory map), then times Euler steps at the chosen image size through
Loom's sampler (CFG 1, one transformer call per step) and the same number of calls of the bare diffusers module on
the same packed inputs. The two are measured in turns, `--repeats` times, and the fastest of each kept, so load from
other processes on a shared machine biases neither. Overhead = Loom's step time / bare forward time - 1; on a
loaded machine that ratio swings with the other processes, so the in-run overhead is printed too: the time a
sampling run spends outside the transformer's forward over the time inside it, both from the same run.
`--lowvram` also times Loom with the transformer run block by block (diffusion/offload.py) under a budget of half
the model.
Run: .venv/bin/python bench/dit.py [--hidden 3072] [--double 2] [--single 4] [--size 256] [--steps 4] [--lowvram]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.model_layer import peak_rss_gb  # noqa: E402
from diffusion.dit_loader import load_diffusion_model  # noqa: E402
from diffusion.flow import FlowModel  # noqa: E402
from diffusion.flux import FluxArch  # noqa: E402
from diffusion.memory import ModelManager, module_nbytes  # noqa: E402
from diffusion.sampling import SampleRequest, sample  # noqa: E402
from diffusion.tiny_dit import flux_file_state  # noqa: E402


def bare_inputs(model: FlowModel, cond: list, size: int, tokens: int) -> dict[str, torch.Tensor]:
    """What Loom hands the transformer for a `size` x `size` image: 2x2-packed latent patches and their ids."""
    device, dtype = model.manager.device, model.manager.dtype
    h = w = size // 16
    ids = torch.zeros(h * w, 3, device=device)
    ids[:, 1] = torch.arange(h, device=device).repeat_interleave(w)
    ids[:, 2] = torch.arange(w, device=device).repeat(h)
    return {
        "hidden_states": torch.randn(1, h * w, 64, device=device, dtype=dtype),
        "encoder_hidden_states": cond[0][0].to(device, dtype),
        "pooled_projections": cond[0][1]["pooled_output"].to(device, dtype),
        "timestep": torch.tensor([0.5], device=device, dtype=dtype),
        "img_ids": ids,
        "txt_ids": torch.zeros(tokens, 3, device=device),
        "guidance": torch.tensor([3.5], device=device, dtype=dtype),
    }


def timed(run: Callable[[], object], calls: int, device: torch.device) -> float:
    """Seconds per call of `run` doing `calls` transformer calls."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    with torch.no_grad():
        run()
    sync()
    return (time.perf_counter() - start) / calls


class ForwardClock:
    """Seconds spent inside `module`'s forward calls, from hooks around them."""

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        self.inside, self.started = 0.0, 0.0
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        module.register_forward_pre_hook(lambda *_: self.start())
        module.register_forward_hook(lambda *_: self.stop())

    def start(self) -> None:
        self.sync()
        self.started = time.perf_counter()

    def stop(self) -> None:
        self.sync()
        self.inside += time.perf_counter() - self.started


def reset_peak_rss() -> bool:
    """Start the peak-RSS count afresh (Linux: writing 5 to clear_refs resets VmHWM), so the figure leaves out
    writing the random-weight file; False where the system does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=3072)
    parser.add_argument("--double", type=int, default=2)
    parser.add_argument("--single", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=256, help="T5 tokens of the prompt")
    parser.add_argument("--lowvram", action="store_true", help="also time block-by-block offload")
    args = parser.parse_args()
    print(f"conditions: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    torch.manual_seed(0)
    arch = FluxArch("", "reference", 16, args.hidden, 128, args.double, args.single, 4096, 768, True)
    with tempfile.TemporaryDirectory() as tmp:
        from safetensors.torch import save_file

        path = Path(tmp) / "flux-bench.safetensors"
        save_file(flux_file_state(arch), str(path))
        print(f"file: {path.stat().st_size / 2**30:.2f} GiB, {args.double} double + {args.single} single blocks, "
              f"hidden {args.hidden}")  # fmt: skip
        fresh = reset_peak_rss()
        manager = ModelManager.create(force_cpu=not torch.cuda.is_available())
        start = time.perf_counter()
        model = load_diffusion_model(path, manager)
        print(f"load: {time.perf_counter() - start:.2f} s")
        model.manager.load([model.unet])
        latent = {"samples": torch.zeros(1, 16, args.size // 8, args.size // 8)}
        cond = [[torch.randn(1, args.tokens, 4096), {"pooled_output": torch.randn(1, 768), "guidance": 3.5}]]

        def loom(m: FlowModel) -> Callable[[], object]:
            return lambda: sample(SampleRequest(m, 0, args.steps, 1.0, "euler", "simple", cond, cond, latent))

        kwargs = bare_inputs(model, cond, args.size, args.tokens)

        def bare() -> None:
            for _ in range(args.steps):
                model.unet(**kwargs)

        best = fastest({"loom": loom(model), "bare": bare}, args.steps, args.repeats, manager.device)
        print(f"loom: {best['loom']:.3f} s/step   bare diffusers forward: {best['bare']:.3f} s/call   "
              f"overhead: {100 * (best['loom'] / best['bare'] - 1):+.1f}%   (best of {args.repeats})")  # fmt: skip
        clock = ForwardClock(model.unet, manager.device)
        total = timed(loom(model), 1, manager.device)
        print(f"in-run overhead: {100 * (total / clock.inside - 1):+.2f}% ({total - clock.inside:.3f} s of "
              f"{total:.3f} s outside the transformer over {args.steps} steps)")  # fmt: skip
        what = "loading and sampling" if fresh else "writing the file, loading and sampling"
        print(f"peak RSS: {peak_rss_gb():.2f} GiB ({what})   device: {manager.device} {manager.dtype}")
        if args.lowvram:
            budget = module_nbytes(model.unet) // 2
            del model, kwargs
            low = ModelManager(
                manager.device, manager.dtype, manager.keep_file_dtype, lowvram=True, budget_bytes=budget
            )
            streamed = load_diffusion_model(path, low)
            offloaded = fastest({"lowvram": loom(streamed)}, args.steps, args.repeats, low.device)["lowvram"]
            print(f"lowvram: {offloaded:.3f} s/step ({100 * (offloaded / best['loom'] - 1):+.1f}% vs whole), "
                  f"device peak {low.ledger.peak / 2**30:.2f} GiB of a {budget / 2**30:.2f} GiB budget")  # fmt: skip


def fastest(runs: dict[str, Callable[[], object]], steps: int, repeats: int, device: torch.device) -> dict[str, float]:
    """Seconds per step of each run: a warm-up each, then `repeats` rounds in turns, the fastest kept."""
    best = dict.fromkeys(runs, float("inf"))
    for run in runs.values():
        timed(run, steps, device)
    for _ in range(repeats):
        for name, run in runs.items():
            best[name] = min(best[name], timed(run, steps, device))
    return best


if __name__ == "__main__":
    main()
