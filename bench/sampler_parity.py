"""Every sampler x scheduler pair on a tiny SD 1.x model, checked against the formulas' expected sigmas.

For each pair the KSampler path runs (8 steps, random tiny weights) with the denoiser wrapped to record the sigma
of every model call. The expected schedule is recomputed here from the published formulas, independently of
diffusion.schedulers (scipy's Beta quantiles, numpy arithmetic, the DDIM paper's timestep spacing), with the
penultimate sigma dropped for DPM-2 and UniPC as the reference does. A cell shows the largest relative deviation of
the sampler's step sigmas from the formula (the sigmas it was handed and, for samplers that call the model at each
step's start, the sigmas it called the model at), then the number of model calls; "!" marks a deviation over
1e-4 or a non-finite result.

`--flow` checks every sampler on a flow-matching model instead (SD3's schedule at shift 3, "simple" sigmas), where
the reference's samplers follow rectified-flow rules, against what those rules guarantee. Point-mass data (every
x0 = 0.5, the exact estimate always 0.5): the latent handed to each step must be the flow marginal (1 - s) 0.5 +
s n; a row shows the largest deviation over the steps of its mean (in standard errors) and of its spread from s
(in %). Gaussian data N(0.5, 0.6²) with its exact denoiser: the output's mean and spread error against the data
after `--steps` and after 100 steps. Rule "as_is" marks samplers the reference runs with their sigma-form
formulas on flow sigmas (Loom matches it), which leave the marginal by design; "!" marks a flow-aware sampler
whose spread strays over 3% or whose mean strays over 5 standard errors. DPM-Solver fast/adaptive report steps on
their own grid, so they get no per-step figures.

    python bench/sampler_parity.py [--steps 8] [--flow]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.stats
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusion import sampling
from diffusion.flow import flow_schedule
from diffusion.loader import load_checkpoint
from diffusion.memory import ModelManager
from diffusion.names import SAMPLER_NAMES, SCHEDULER_NAMES
from diffusion.noise import BrownianTreeNoise, GaussianNoise
from diffusion.samplers import SAMPLERS, Sampler
from diffusion.samplers.scaling import RectifiedFlow
from diffusion.schedulers import sigmas_for
from diffusion.tiny import build_tiny, tiny_spec, write_checkpoint

# DPM-Solver-fast/adaptive call the model on their own grid in log-sigma; every other sampler calls it at each
# step's sigma (and at stage points between).
OWN_GRID = {"dpm_fast", "dpm_adaptive"}


def training_sigmas() -> np.ndarray:
    """SD 1.x's 1000 training sigmas: scaled-linear betas from 0.00085 to 0.012."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    abar = np.cumprod(1 - betas)
    return ((1 - abar) / abar) ** 0.5


def expected(name: str, steps: int, sig: np.ndarray) -> np.ndarray:
    """The scheduler's sigmas for `steps`, from its formula."""
    lo, hi = float(np.float32(sig[0])), float(np.float32(sig[-1]))
    log_sig = np.log(sig)

    def at_t(ts: np.ndarray) -> np.ndarray:  # log-linear interpolation between training timesteps
        return np.exp(np.interp(ts, np.arange(len(sig)), log_sig))

    if name == "simple":
        out = [sig[-(1 + int(i * len(sig) / steps))] for i in range(steps)]
    elif name == "sgm_uniform":
        out = at_t(np.linspace(999, 0, steps + 1)[:-1])
    elif name == "normal":
        out = at_t(np.linspace(999, 0, steps))
    elif name == "karras":
        ramp = np.linspace(0, 1, steps)
        out = (hi ** (1 / 7) + ramp * (lo ** (1 / 7) - hi ** (1 / 7))) ** 7
    elif name == "exponential":
        out = np.exp(np.linspace(math.log(hi), math.log(lo), steps))
    elif name == "ddim_uniform":  # DDIM (Song et al. 2021) "uniform": timesteps 1, 1 + c, 1 + 2c, ... with c = T // S
        out = sig[np.arange(1, len(sig), len(sig) // steps)][::-1]
    elif name == "beta":
        ts = np.rint(scipy.stats.beta.ppf(1 - np.linspace(0, 1, steps, endpoint=False), 0.6, 0.6) * 999)
        out = sig[np.array([int(t) for i, t in enumerate(ts) if i == 0 or t != ts[i - 1]])]
    elif name == "linear_quadratic":
        half = steps // 2
        line = [i * 0.025 / half for i in range(half)]
        gap = half - 0.025 * steps
        q = steps - half
        a, b = gap / (half * q**2), 0.025 / half - 2 * gap / q**2
        curve = [a * i**2 + b * i + a * half**2 for i in range(half, steps)]
        return (1 - np.array([*line, *curve, 1.0])) * hi
    elif name == "kl_optimal":
        w = np.arange(steps) / (steps - 1)
        out = np.tan(w * math.atan(lo) + (1 - w) * math.atan(hi))
    else:
        raise KeyError(name)
    return np.concatenate([np.asarray(out, dtype=np.float64), [0.0]])


MU, C = 0.5, 0.6
FLOW_SHAPE = (1, 4, 64, 64)


def _flow_run(sampler: Sampler, steps: int, model: Callable, record: Callable) -> tuple[torch.Tensor, float]:
    """The output of `sampler` on an SD3-schedule flow model from pure noise, and the sigma it ends at."""
    schedule = flow_schedule("sd3", 3.0)
    sigmas = sigmas_for(schedule, "simple", steps)
    x = torch.randn(FLOW_SHAPE, generator=torch.Generator().manual_seed(0))
    tree = sampler.noise in ("tree", "device_tree")
    noise = BrownianTreeNoise.for_sigmas(x, sigmas, 4) if tree else GaussianNoise(FLOW_SHAPE, 4)
    options = sampler.schedule_defaults(schedule) if sampler.schedule_defaults is not None else {}
    scaling = RectifiedFlow(top=schedule.percent_to_sigma(1e-4))
    out = sampler(model, x, sigmas, noise, record, scaling=scaling, **options)
    return out, float(sigmas[sigmas > 0][-1] if sampler.stops_above_zero else sigmas[-1])


def _gaussian(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    s = sigma.reshape(-1, 1, 1, 1)
    a = 1 - s
    return MU + a * C**2 / (a**2 * C**2 + s**2) * (x - a * MU)


def _gaussian_error(sampler: Sampler, steps: int) -> tuple[float, float]:
    out, end = _flow_run(sampler, steps, _gaussian, lambda *_: None)
    a, s = 1 - end, end
    return abs(float(out.mean()) - a * MU), abs(float(out.std()) - (a**2 * C**2 + s**2) ** 0.5)


def flow_parity(steps: int) -> None:
    """Every sampler on a flow model against the flow marginal (see the module's docstring)."""
    started, failures = time.perf_counter(), 0
    width = max(len(n) for n in SAMPLER_NAMES)
    print(f"flow model (SD3 schedule, shift 3, simple), {steps} steps; point mass: worst step's mean deviation in "
          "standard errors, spread deviation in %; Gaussian data: |mean error| / |spread error|")  # fmt: skip
    print(f"{'':<{width}} {'rule':<7}{'mean dev':>9}{'spread %':>10}{f'{steps} steps':>17}{'100 steps':>17}")
    for name in SAMPLER_NAMES:
        sampler = SAMPLERS[name]
        seen: list[tuple[int, torch.Tensor]] = []

        def record(i: int, x: torch.Tensor, _d: torch.Tensor, seen: list = seen) -> None:
            seen.append((i, x))

        _flow_run(sampler, steps, lambda x, _s: torch.full_like(x, MU), record)
        sigmas = sigmas_for(flow_schedule("sd3", 3.0), "simple", steps)
        top = flow_schedule("sd3", 3.0).percent_to_sigma(1e-4)
        mean_dev = spread_dev = 0.0
        for i, x in seen:
            s = top if i == 0 and sampler.on_flow == "snr" else float(sigmas[i])
            mean_dev = max(mean_dev, abs(float(x.mean()) - (1 - s) * MU) / (s / x.numel() ** 0.5))
            spread_dev = max(spread_dev, abs(float(x.std()) / s - 1) * 100)
        coarse, fine = _gaussian_error(sampler, steps), _gaussian_error(sampler, 100)
        bad = sampler.on_flow != "as_is" and (spread_dev > 3 or mean_dev > 5)
        failures += bad
        marginal = f"{'-':>9}{'-':>10}" if name in OWN_GRID else f"{mean_dev:9.1f}{spread_dev:10.2f}"
        print(
            f"{name:<{width}} {sampler.on_flow:<7}{marginal}"
            f"{coarse[0]:9.4f}/{coarse[1]:.4f}{fine[0]:9.4f}/{fine[1]:.4f}{' !' if bad else ''}",
            flush=True,
        )
    elapsed = time.perf_counter() - started
    print(f"{len(SAMPLER_NAMES)} samplers, {failures} flow-aware ones off the marginal, {elapsed:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--flow", action="store_true", help="samplers on a flow-matching model")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a tiny model: threads only contend
    if args.flow:
        flow_parity(args.steps)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = write_checkpoint(Path(tmp) / "tiny-sd1.safetensors", build_tiny(tiny_spec("sd1"), seed=7))
        checkpoint = load_checkpoint(path, ModelManager.create(force_cpu=True))
    model = checkpoint.model
    pos, neg = checkpoint.clip.encode("a cat"), checkpoint.clip.encode("")
    cond = [[pos.cond, {"pooled_output": pos.pooled}]], [[neg.cond, {"pooled_output": neg.pooled}]]
    sig = training_sigmas()
    handed: dict[str, torch.Tensor] = {}
    calls: list[float] = []
    original_guided = sampling.Guided.__call__

    def recording(self: sampling.Guided, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        calls.append(float(sigma[0]))
        return original_guided(self, x, sigma)

    original_sampler_call = type(SAMPLERS["euler"]).__call__

    def handing(self, model_, x, sigmas, noise, cb, **options):  # the sigmas the runner hands the sampler
        handed["sigmas"] = sigmas.detach().double().cpu()
        return original_sampler_call(self, model_, x, sigmas, noise, cb, **options)

    sampling.Guided.__call__ = recording  # type: ignore[method-assign]
    type(SAMPLERS["euler"]).__call__ = handing  # type: ignore[method-assign]
    worst, failures, started = 0.0, 0, time.perf_counter()
    width = max(len(n) for n in SAMPLER_NAMES)
    print(f"{args.steps} steps, tiny SD 1.x, cell = max relative sigma deviation / model calls")
    print(" " * width + " " + " ".join(f"{s[:13]:>13}" for s in SCHEDULER_NAMES))
    for name in SAMPLER_NAMES:
        cells = []
        for scheduler in SCHEDULER_NAMES:
            discard = SAMPLERS[name].discard_penultimate
            want = expected(scheduler, args.steps + 1 if discard else args.steps, sig)
            if discard:
                want = np.concatenate([want[:-2], want[-1:]])
            calls.clear()
            req = sampling.SampleRequest(
                model=model, seed=1, steps=args.steps, cfg=5.0, sampler=name, scheduler=scheduler,
                positive=cond[0], negative=cond[1], latent={"samples": torch.zeros(1, 4, 8, 8)},
            )  # fmt: skip
            out = sampling.sample(req)["samples"]
            got = handed["sigmas"].numpy()
            dev = float(np.max(np.abs(got - want) / np.maximum(want, 1e-3))) if len(got) == len(want) else math.inf
            if name not in OWN_GRID:  # the model must have been called at every step's sigma
                called = np.array(calls)
                if any(not np.any(np.abs(called - w) <= 1e-4 * w) for w in want[:-1]):
                    dev = max(dev, 1.0)
            bad = dev > 1e-4 or not bool(torch.isfinite(out).all())
            failures += bad
            worst = max(worst, dev)
            cells.append(f"{dev:8.1e}/{len(calls):<3d}{'!' if bad else ' '}")
        print(f"{name:<{width}} " + " ".join(cells), flush=True)
    elapsed = time.perf_counter() - started
    pairs = len(SAMPLER_NAMES) * len(SCHEDULER_NAMES)
    print(f"{pairs} pairs, {failures} off the formulas, largest deviation {worst:.2e}, {elapsed:.1f} s")


if __name__ == "__main__":
    main()
