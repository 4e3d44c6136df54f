"""`comfy.k_diffusion.sampling` for node packs: Loom's samplers and sigma schedules in k-diffusion's call shape.

`sample_<name>(model, x, sigmas, extra_args=None, callback=None, disable=None, ...)` runs Loom's sampler of that
name (diffusion.samplers) with `model(x, sigma, **extra_args)` as the denoiser; the callback gets k-diffusion's
`{"x", "i", "sigma", "sigma_hat", "denoised"}` dict. Loom's samplers run with the reference's default settings
(eta 1, s_noise 1, no churn); asking for other settings fails rather than silently sampling differently. The
schedule helpers (`get_sigmas_karras`, ...) and `to_d`, `append_zero`, `default_noise_sampler`,
`BrownianTreeNoiseSampler` are written from the published formulas.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import trange

from compat.surface import complete, resolve
from diffusion import samplers as loom_samplers
from diffusion.noise import BrownianTreeNoise, seeded_generator

__all__ = ["trange"]

# Settings Loom's samplers always use: a pack asking for exactly these gets Loom's sampler.
_DEFAULTS: dict[str, Any] = {
    "eta": 1.0,
    "s_noise": 1.0,
    "s_churn": 0.0,
    "s_tmin": 0.0,
    "s_tmax": float("inf"),
    "order": 4,
    "r": 0.5,
    "solver_type": "midpoint",
}


def append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    missing = target_dims - x.ndim
    if missing < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * missing]


def append_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros([1])])


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The ODE derivative dx/dsigma at (x, sigma) given the denoised estimate."""
    return (x - denoised) / append_dims(sigma, x.ndim)


def get_ancestral_step(sigma_from: Any, sigma_to: Any, eta: float = 1.0) -> tuple[Any, Any]:
    return loom_samplers.ancestral_step(torch.as_tensor(sigma_from), torch.as_tensor(sigma_to), eta)


def get_sigmas_karras(
    n: int, sigma_min: float, sigma_max: float, rho: float = 7.0, device: Any = "cpu"
) -> torch.Tensor:
    ramp = torch.linspace(0, 1, n, device=device)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return append_zero((hi + ramp * (lo - hi)) ** rho)


def get_sigmas_exponential(n: int, sigma_min: float, sigma_max: float, device: Any = "cpu") -> torch.Tensor:
    return append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, device=device).exp())


def get_sigmas_polyexponential(
    n: int, sigma_min: float, sigma_max: float, rho: float = 1.0, device: Any = "cpu"
) -> torch.Tensor:
    ramp = torch.linspace(1, 0, n, device=device) ** rho
    return append_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def get_sigmas_vp(
    n: int, beta_d: float = 19.9, beta_min: float = 0.1, eps_s: float = 1e-3, device: Any = "cpu"
) -> torch.Tensor:
    t = torch.linspace(1, eps_s, n, device=device)
    return append_zero(torch.sqrt(torch.exp(beta_d * t**2 / 2 + beta_min * t) - 1))


def default_noise_sampler(x: torch.Tensor, seed: int | None = None) -> Callable[[Any, Any], torch.Tensor]:
    """Fresh Gaussian noise like `x` on each call (from a generator seeded with `seed` when given)."""
    generator = seeded_generator(seed) if seed is not None else None

    def draw(sigma: Any, sigma_next: Any) -> torch.Tensor:
        return torch.randn(x.shape, dtype=x.dtype, generator=generator, device="cpu").to(x.device)

    return draw


class BrownianTreeNoiseSampler:
    """Noise from Brownian trees over [sigma_min, sigma_max]; item i of the batch uses seed + i (Loom's rule)."""

    def __init__(
        self,
        x: torch.Tensor,
        sigma_min: float,
        sigma_max: float,
        seed: int | list[int] | None = None,
        transform: Callable[[Any], Any] = lambda sigma: sigma,
        cpu: bool = False,
    ) -> None:
        base = 0 if seed is None else seed
        seeds = list(base) if isinstance(base, list) else [int(base) + i for i in range(x.shape[0])]
        self.transform = transform
        self.tree = BrownianTreeNoise(x, float(transform(sigma_min)), float(transform(sigma_max)), seeds)

    def __call__(self, sigma: Any, sigma_next: Any) -> torch.Tensor:
        return self.tree(torch.as_tensor(self.transform(sigma)), torch.as_tensor(self.transform(sigma_next)))


def _adapter(name: str) -> Callable[..., torch.Tensor]:
    def run(
        model: Callable[..., torch.Tensor],
        x: torch.Tensor,
        sigmas: torch.Tensor,
        extra_args: dict[str, Any] | None = None,
        callback: Callable[[dict[str, Any]], Any] | None = None,
        disable: bool | None = None,
        noise_sampler: Callable[[Any, Any], torch.Tensor] | None = None,
        **settings: Any,
    ) -> torch.Tensor:
        changed = {k: v for k, v in settings.items() if k not in _DEFAULTS or _DEFAULTS[k] != v}
        if changed:
            raise ValueError(
                f"comfy.k_diffusion.sampling.sample_{name}: Loom's {name} sampler has no settings {changed}"
            )
        extra = dict(extra_args or {})
        noise = noise_sampler or default_noise_sampler(x, extra.get("seed"))

        def denoise(x_now: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return model(x_now, sigma, **extra)

        def report(i: int, x_now: torch.Tensor, denoised: torch.Tensor) -> None:
            if callback is not None:
                step = {"x": x_now, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised}
                callback(step)

        return loom_samplers.SAMPLERS[name](denoise, x, sigmas, noise, report)

    run.__name__ = run.__qualname__ = f"sample_{name}"
    run.__doc__ = f"Loom's {name} sampler (diffusion.samplers) in k-diffusion's call shape."
    return run


for _name in loom_samplers.SAMPLERS:
    globals()[f"sample_{_name}"] = _adapter(_name)
    __all__.append(f"sample_{_name}")

complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
