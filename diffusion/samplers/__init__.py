"""Every sampler by its workflow name, with what the runner must know about it.

A sampler is `fn(model, x, sigmas, noise, callback, **options) -> x`: one explicit loop over a decreasing sigma
list (diffusion.schedulers), `model(x, sigma)` returning the x0 estimate. The modules group them by family;
names and their order come from diffusion.names, the one list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import torch

from diffusion.names import SAMPLER_NAMES
from diffusion.samplers import dpm_solver, dpmpp, karras, multistep, sa_solver, stochastic, unipc
from diffusion.samplers.flow import run_in_snr_view
from diffusion.samplers.scaling import VE, NoiseScaling

NoiseKind = Literal["none", "stream", "tree", "device_tree"]
# How a sampler runs on a model whose latents are not in sigma form (flow matching), as the reference runs it:
# "as_is" steps the sigmas with the sigma-form formulas (deterministic samplers, and those the reference leaves
# so: ddpm, res_multistep, dpm_fast/adaptive, dpmpp_2m_cfg_pp, gradient_estimation); "scaled" hands the sampler
# the model's NoiseScaling (ancestral steps, CFG++ Euler, LCM's renoise); "snr" runs it in the half-log-SNR
# view (diffusion.samplers.flow: the SDE exponential integrators).
FlowRule = Literal["as_is", "scaled", "snr"]


@dataclass(frozen=True)
class Sampler:
    """A sampler function and how to run it.

    noise: "stream" draws fresh seeded Gaussian noise per call (diffusion.noise.GaussianNoise), "tree" takes the
    increments of a seeded Brownian tree kept on the CPU, "device_tree" the same tree on the model's device (the
    `_gpu` samplers: no copies, but the path then depends on the device). discard_penultimate: KSampler computes
    one step more and drops the second-to-last sigma (the step into the smallest sigma is wasted on these).
    fresh_inpaint_noise: the masked-out area follows a second noise draw rather than the initial noise.
    schedule_defaults: options placed on the model's schedule, for options a sampler node did not set.
    level_options: options that hold noise levels (converted with the sigmas in the half-log-SNR view).
    stops_above_zero: returns the latent at the smallest nonzero sigma, leftover noise and all (DPM-Solver's
    fast and adaptive forms, as the reference's).
    on_flow: how it runs on a flow-matching model (FlowRule).
    """

    name: str
    fn: Callable[..., torch.Tensor]
    noise: NoiseKind = "none"
    discard_penultimate: bool = False
    fresh_inpaint_noise: bool = False
    schedule_defaults: Callable[[Any], dict[str, Any]] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    level_options: tuple[str, ...] = ()
    stops_above_zero: bool = False
    on_flow: FlowRule = "as_is"

    def __call__(
        self,
        model: Any,
        x: torch.Tensor,
        sigmas: torch.Tensor,
        noise: Any,
        cb: Any,
        scaling: NoiseScaling = VE,
        **options: Any,
    ) -> torch.Tensor:
        """Run along `sigmas` on a model whose latents `scaling` describes (diffusion.samplers.scaling)."""
        merged = self.options | options
        if self.on_flow == "scaled":
            return self.fn(model, x, sigmas, noise, cb, scaling=scaling, **merged)
        if self.on_flow == "snr" and not scaling.native_sigma_form:
            return run_in_snr_view(self.fn, scaling, model, x, sigmas, noise, cb, merged, self.level_options)
        return self.fn(model, x, sigmas, noise, cb, **merged)

    @property
    def needs_uncond(self) -> bool:
        """CFG++ samplers read the unguided estimate, so guidance computes it even at cfg 1."""
        return self.name.endswith("_cfg_pp")


@dataclass(frozen=True)
class SamplerChoice:
    """A SAMPLER socket value: a sampler's name and the options a sampler node set (eta, s_noise, order...)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


def _all() -> dict[str, Sampler]:
    m, p, s = multistep, dpmpp, stochastic
    table = [
        Sampler("euler", karras.euler),
        Sampler("euler_cfg_pp", karras.euler_cfg_pp, on_flow="scaled"),
        Sampler("euler_ancestral", karras.euler_ancestral, "stream", on_flow="scaled"),
        Sampler("euler_ancestral_cfg_pp", karras.euler_ancestral_cfg_pp, "stream", on_flow="scaled"),
        Sampler("heun", karras.heun),
        Sampler("heunpp2", karras.heunpp2),
        Sampler("dpm_2", karras.dpm_2, discard_penultimate=True),
        Sampler("dpm_2_ancestral", karras.dpm_2_ancestral, "stream", discard_penultimate=True, on_flow="scaled"),
        Sampler("lms", m.lms),
        Sampler("dpm_fast", dpm_solver.dpm_fast, "stream", stops_above_zero=True),
        Sampler("dpm_adaptive", dpm_solver.dpm_adaptive, "stream", stops_above_zero=True),
        Sampler("dpmpp_2s_ancestral", p.dpmpp_2s_ancestral, "stream", on_flow="scaled"),
        Sampler("dpmpp_2s_ancestral_cfg_pp", p.dpmpp_2s_ancestral_cfg_pp, "stream", on_flow="scaled"),
        Sampler("dpmpp_sde", p.dpmpp_sde, "tree", on_flow="snr"),
        Sampler("dpmpp_sde_gpu", p.dpmpp_sde, "device_tree", on_flow="snr"),
        Sampler("dpmpp_2m", p.dpmpp_2m),
        Sampler("dpmpp_2m_cfg_pp", p.dpmpp_2m_cfg_pp),
        Sampler("dpmpp_2m_sde", p.dpmpp_2m_sde, "tree", on_flow="snr"),
        Sampler("dpmpp_2m_sde_gpu", p.dpmpp_2m_sde, "device_tree", on_flow="snr"),
        Sampler("dpmpp_2m_sde_heun", p.dpmpp_2m_sde, "tree", options={"solver_type": "heun"}, on_flow="snr"),
        Sampler("dpmpp_2m_sde_heun_gpu", p.dpmpp_2m_sde, "device_tree", options={"solver_type": "heun"}, on_flow="snr"),
        Sampler("dpmpp_3m_sde", p.dpmpp_3m_sde, "tree", on_flow="snr"),
        Sampler("dpmpp_3m_sde_gpu", p.dpmpp_3m_sde, "device_tree", on_flow="snr"),
        Sampler("ddpm", s.ddpm, "stream"),
        Sampler("lcm", s.lcm, "stream", on_flow="scaled"),
        Sampler("ipndm", m.ipndm),
        Sampler("ipndm_v", m.ipndm_v),
        Sampler("deis", m.deis),
        Sampler("res_multistep", p.res_multistep, options={"eta": 0.0}),
        Sampler("res_multistep_cfg_pp", p.res_multistep, options={"eta": 0.0, "cfg_pp": True}),
        Sampler("res_multistep_ancestral", p.res_multistep, "stream", options={"eta": 1.0}),
        Sampler("res_multistep_ancestral_cfg_pp", p.res_multistep, "stream", options={"eta": 1.0, "cfg_pp": True}),
        Sampler("gradient_estimation", m.gradient_estimation),
        Sampler("gradient_estimation_cfg_pp", m.gradient_estimation, options={"cfg_pp": True}),
        Sampler("er_sde", s.er_sde, "stream", on_flow="snr"),
        Sampler("seeds_2", s.seeds_2, "stream", on_flow="snr"),
        Sampler("seeds_3", s.seeds_3, "stream", on_flow="snr"),
        Sampler(
            "sa_solver",
            sa_solver.sa_solver,
            "stream",
            schedule_defaults=sa_solver.default_options,
            level_options=("sde_sigmas",),
            on_flow="snr",
        ),
        Sampler(
            "sa_solver_pece",
            sa_solver.sa_solver,
            "stream",
            schedule_defaults=sa_solver.default_options,
            options={"use_pece": True},
            level_options=("sde_sigmas",),
            on_flow="snr",
        ),
        # DDIM with eta = 0 is exactly the Euler step of the probability-flow ODE in sigma form.
        Sampler("ddim", karras.euler, fresh_inpaint_noise=True),
        Sampler("uni_pc", unipc.uni_pc, discard_penultimate=True),
        Sampler("uni_pc_bh2", partial(unipc.uni_pc, variant="bh2"), discard_penultimate=True),
    ]
    by_name = {s.name: s for s in table}
    if tuple(by_name) != SAMPLER_NAMES:
        raise RuntimeError("diffusion.samplers: the table must list diffusion.names.SAMPLER_NAMES, in order")
    return by_name


SAMPLERS: dict[str, Sampler] = _all()
# Samplers whose noise comes from a Brownian tree: a step's noise depends on its interval, not on the draw count.
SDE = frozenset(name for name, s in SAMPLERS.items() if s.noise in ("tree", "device_tree"))
