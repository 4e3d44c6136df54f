"""Custom sampling: the sampler, its noise, guidance and sigma schedule as separate nodes wired together.

SIGMAS values are 1-D float tensors (decreasing noise levels); SAMPLER a diffusion.samplers.SamplerChoice; GUIDER a
diffusion.guidance.Guider; NOISE a diffusion.sampling noise source. The schemas follow the reference's node
definitions (names, order, defaults and limits), so canvas files that use them load with their widget values.
"""

from __future__ import annotations

import re
from typing import Any

from diffusion.names import SAMPLER_NAMES, SCHEDULER_NAMES
from engine.context import NodeContext
from engine.native import Boolean, Combo, Float, Int, Out, Socket, String, node
from nodes.shared import step_reporter

MAX_SEED = 0xFFFF_FFFF_FFFF_FFFF
SCHEDULERS = "sampling/custom_sampling/schedulers"
SIGMAS = "sampling/custom_sampling/sigmas"
SAMPLERS = "sampling/custom_sampling/samplers"
GUIDERS = "sampling/custom_sampling/guiders"
NOISE = "sampling/custom_sampling/noise"
SIGMA_MAX, SIGMA_MIN = 14.614642, 0.0291675


def _model(model: Any, name: str = "model") -> Any:
    if model is None or not hasattr(model, "schedule"):
        raise ValueError(f"{name}: expected a diffusion MODEL (from a checkpoint or UNet loader)")
    return model


def _sigmas(sigmas: Any) -> Any:
    import torch

    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1:
        raise ValueError("sigmas: expected SIGMAS, a 1-D list of noise levels")
    return sigmas


def _socket(value: Any, kind: type, name: str, source: str) -> Any:
    if not isinstance(value, kind):
        raise ValueError(f"{name}: expected a {name.upper()} from {source}, got {type(value).__name__}")
    return value


def _sampler(value: Any) -> Any:
    from diffusion.samplers import SamplerChoice

    return _socket(value, SamplerChoice, "sampler", "KSamplerSelect or a Sampler* node")


# Schedulers


@node(category=SCHEDULERS, outputs=["SIGMAS"], display_name="BasicScheduler")
def BasicScheduler(
    model: Any = Socket("MODEL"),
    scheduler: str = Combo(SCHEDULER_NAMES),
    steps: int = Int(20, min=1, max=10000),
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01),
) -> Any:
    """A named schedule on the model's noise levels; denoise < 1 keeps the last `steps` of a longer one."""
    import torch

    from diffusion.schedulers import sigmas_for

    if denoise <= 0:
        return torch.zeros(0)
    total = steps if denoise >= 1 else int(steps / denoise)
    return sigmas_for(_model(model).schedule, scheduler, total)[-(steps + 1) :]


def _range_inputs() -> dict[str, Any]:
    return {
        "sigma_max": Float(SIGMA_MAX, min=0.0, max=5000.0, step=0.01, round=False),
        "sigma_min": Float(SIGMA_MIN, min=0.0, max=5000.0, step=0.01, round=False),
    }


@node(category=SCHEDULERS, outputs=["SIGMAS"], display_name="KarrasScheduler")
def KarrasScheduler(
    steps: int = Int(20, min=1, max=10000),
    sigma_max: float = _range_inputs()["sigma_max"],
    sigma_min: float = _range_inputs()["sigma_min"],
    rho: float = Float(7.0, min=0.0, max=100.0, step=0.01, round=False),
) -> Any:
    """Karras et al.'s schedule, uniform in sigma^(1/rho), between any two sigmas."""
    from diffusion.schedulers import karras_range

    return karras_range(steps, sigma_min, sigma_max, rho)


@node(category=SCHEDULERS, outputs=["SIGMAS"], display_name="ExponentialScheduler")
def ExponentialScheduler(
    steps: int = Int(20, min=1, max=10000),
    sigma_max: float = _range_inputs()["sigma_max"],
    sigma_min: float = _range_inputs()["sigma_min"],
) -> Any:
    """Uniform in log-sigma."""
    from diffusion.schedulers import exponential_range

    return exponential_range(steps, sigma_min, sigma_max)


@node(category=SCHEDULERS, outputs=["SIGMAS"], display_name="PolyexponentialScheduler")
def PolyexponentialScheduler(
    steps: int = Int(20, min=1, max=10000),
    sigma_max: float = _range_inputs()["sigma_max"],
    sigma_min: float = _range_inputs()["sigma_min"],
    rho: float = Float(1.0, min=0.0, max=100.0, step=0.01, round=False),
) -> Any:
    """A polynomial of degree rho in log-sigma."""
    from diffusion.schedulers import polyexponential_range

    return polyexponential_range(steps, sigma_min, sigma_max, rho)


@node(category=SCHEDULERS, outputs=["SIGMAS"], display_name="LaplaceScheduler")
def LaplaceScheduler(
    steps: int = Int(20, min=1, max=10000),
    sigma_max: float = _range_inputs()["sigma_max"],
    sigma_min: float = _range_inputs()["sigma_min"],
    mu: float = Float(0.0, min=-10.0, max=10.0, step=0.1, round=False),
    beta: float = Float(0.5, min=0.0, max=10.0, step=0.1, round=False),
) -> Any:
    """Log-sigma at Laplace quantiles, dense around e^mu."""
    from diffusion.schedulers import laplace_range

    return laplace_range(steps, sigma_min, sigma_max, mu, beta)


@node(category=SCHEDULERS, outputs=["SIGMAS"], display_name="VPScheduler")
def VPScheduler(
    steps: int = Int(20, min=1, max=10000),
    beta_d: float = Float(19.9, min=0.0, max=5000.0, step=0.01, round=False),
    beta_min: float = Float(0.1, min=0.0, max=5000.0, step=0.01, round=False),
    eps_s: float = Float(0.001, min=0.0, max=1.0, step=0.0001, round=False),
) -> Any:
    """The continuous variance-preserving SDE's noise levels, uniform in its time."""
    from diffusion.schedulers import vp_range

    return vp_range(steps, beta_d, beta_min, eps_s)


@node(category=SCHEDULERS, outputs=["SIGMAS"], display_name="BetaSamplingScheduler")
def BetaSamplingScheduler(
    model: Any = Socket("MODEL"),
    steps: int = Int(20, min=1, max=10000),
    alpha: float = Float(0.6, min=0.0, max=50.0, step=0.01, round=False),
    beta: float = Float(0.6, min=0.0, max=50.0, step=0.01, round=False),
) -> Any:
    """The model's timesteps at Beta(alpha, beta) quantiles (denser at both ends for 0.6, 0.6)."""
    from diffusion.schedulers import beta as beta_schedule

    return beta_schedule(_model(model).schedule, steps, alpha, beta).float()


@node(category=SCHEDULERS, outputs=["SIGMAS"], display_name="SDTurboScheduler")
def SDTurboScheduler(
    model: Any = Socket("MODEL"),
    steps: int = Int(1, min=1, max=10),
    denoise: float = Float(1.0, min=0, max=1.0, step=0.01),
) -> Any:
    """SD-Turbo / SDXL-Turbo's timesteps 999, 899, ..., 99; denoise < 1 starts further down."""
    import torch

    start = 10 - int(10 * denoise)
    timesteps = torch.arange(10, 0, -1)[start : start + steps] * 100 - 1
    sigmas = _model(model).schedule.t_to_sigma(timesteps.float())
    return torch.cat([sigmas, sigmas.new_zeros(1)])


@node(category=SCHEDULERS, outputs=["SIGMAS"], display_name="AlignYourStepsScheduler")
def AlignYourStepsScheduler(
    model_type: str = Combo(("SD1", "SDXL", "SVD")),
    steps: int = Int(10, min=1, max=10000),
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01),
) -> Any:
    """NVIDIA's Align-Your-Steps sigmas for the model family, stretched to `steps`."""
    from diffusion.published_schedules import ALIGN_YOUR_STEPS
    from diffusion.schedulers import published_schedule

    return published_schedule(ALIGN_YOUR_STEPS[model_type], steps, denoise)


@node(category=SCHEDULERS, outputs=["SIGMAS"], display_name="OptimalStepsScheduler")
def OptimalStepsScheduler(
    model_type: str = Combo(("FLUX", "Wan", "Chroma")),
    steps: int = Int(20, min=3, max=1000),
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01),
) -> Any:
    """The Optimal-Stepsize timesteps for the flow-matching family, stretched to `steps`."""
    from diffusion.published_schedules import OPTIMAL_STEPS
    from diffusion.schedulers import published_schedule

    return published_schedule(OPTIMAL_STEPS[model_type], steps, denoise)


@node(category=SCHEDULERS, outputs=["SIGMAS"], display_name="GITSScheduler")
def GITSScheduler(
    coeff: float = Float(1.20, min=0.80, max=1.50, step=0.05),
    steps: int = Int(10, min=2, max=1000),
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01),
) -> Any:
    """The GITS paper's searched SD 1.x noise levels for `coeff` (tables for 2-20 steps; more steps stretch the
    20-step table log-linearly)."""
    from diffusion.published_schedules import GITS
    from diffusion.schedulers import published_schedule

    table = GITS.get(round(coeff * 100))
    if table is None:
        published = ", ".join(f"{c / 100:.2f}" for c in GITS)
        raise ValueError(f"coeff: GITS publishes tables for {published}; got {coeff}")
    return published_schedule(table[min(steps, 20) - 2], steps, denoise)


@node(category="_for_testing/custom_sampling", outputs=["SIGMAS"], display_name="ManualSigmas", experimental=True)
def ManualSigmas(sigmas: str = String("1, 0.5")) -> Any:
    """Sigmas typed by hand: every number in the text, in order."""
    import torch

    values = [float(v) for v in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", sigmas or "")]
    return torch.tensor(values, dtype=torch.float32)


# Sigma operations


@node(category=SIGMAS, outputs=[Out("SIGMAS", "high_sigmas"), Out("SIGMAS", "low_sigmas")], display_name="SplitSigmas")
def SplitSigmas(sigmas: Any = Socket("SIGMAS"), step: int = Int(0, min=0, max=10000)) -> tuple[Any, Any]:
    """Cut a schedule at `step`: both halves share that sigma, so two samplers can hand over there."""
    sigmas = _sigmas(sigmas)
    return sigmas[: step + 1], sigmas[step:]


@node(
    category=SIGMAS,
    outputs=[Out("SIGMAS", "high_sigmas"), Out("SIGMAS", "low_sigmas")],
    display_name="SplitSigmasDenoise",
)
def SplitSigmasDenoise(
    sigmas: Any = Socket("SIGMAS"), denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
) -> tuple[Any, Any]:
    """Cut a schedule so the low part holds the last `denoise` fraction of its steps."""
    sigmas = _sigmas(sigmas)
    steps = max(sigmas.shape[-1] - 1, 0)
    low_steps = round(steps * denoise)
    return sigmas[: len(sigmas) - low_steps], sigmas[-(low_steps + 1) :]


@node(category=SIGMAS, outputs=["SIGMAS"], display_name="FlipSigmas")
def FlipSigmas(sigmas: Any = Socket("SIGMAS")) -> Any:
    """Reverse a schedule (for unsampling: noise an image back along the path); a leading 0 becomes 0.0001."""
    sigmas = _sigmas(sigmas)
    if len(sigmas) == 0:
        return sigmas
    flipped = sigmas.flip(0).clone()
    if float(flipped[0]) == 0:
        flipped[0] = 0.0001
    return flipped


@node(category=SIGMAS, outputs=["SIGMAS"], display_name="SetFirstSigma")
def SetFirstSigma(
    sigmas: Any = Socket("SIGMAS"), sigma: float = Float(136.0, min=0.0, max=20000.0, step=0.001, round=False)
) -> Any:
    """Replace the starting noise level."""
    out = _sigmas(sigmas).clone()
    if len(out) == 0:
        raise ValueError("sigmas: the schedule is empty")
    out[0] = sigma
    return out


@node(category=SIGMAS, outputs=["SIGMAS"], display_name="ExtendIntermediateSigmas")
def ExtendIntermediateSigmas(
    sigmas: Any = Socket("SIGMAS"),
    steps: int = Int(2, min=1, max=100),
    start_at_sigma: float = Float(-1.0, min=-1.0, max=20000.0, step=0.01, round=False),
    end_at_sigma: float = Float(12.0, min=0.0, max=20000.0, step=0.01, round=False),
    spacing: str = Combo(("linear", "cosine", "sine")),
) -> Any:
    """Split every step whose sigma lies in [end_at_sigma, start_at_sigma] (start -1: no upper bound) into `steps`
    steps, spaced linearly or eased (cosine: small steps last, sine: small steps first)."""
    import math

    import torch

    sigmas = _sigmas(sigmas)
    top = float("inf") if start_at_sigma < 0 else start_at_sigma
    x = torch.linspace(0, 1, steps + 1)[1:-1]
    fractions = {"linear": x, "cosine": torch.sin(x * math.pi / 2), "sine": 1 - torch.cos(x * math.pi / 2)}[spacing]
    out: list[float] = []
    for i in range(len(sigmas) - 1):
        current, nxt = float(sigmas[i]), float(sigmas[i + 1])
        out.append(current)
        if end_at_sigma <= current <= top:
            out.extend((fractions * (nxt - current) + current).tolist())
    if len(sigmas) > 0:
        out.append(float(sigmas[-1]))
    return torch.tensor(out, dtype=torch.float32)


@node(category=SIGMAS, outputs=[Out("FLOAT", "sigma_value")], display_name="SamplingPercentToSigma")
def SamplingPercentToSigma(
    model: Any = Socket("MODEL"),
    sampling_percent: float = Float(0.0, min=0.0, max=1.0, step=0.0001),
    return_actual_sigma: bool = Boolean(
        False,
        tooltip="Return the actual sigma value instead of the value used for interval checks.\n"
        "This only affects results at 0.0 and 1.0.",
    ),
) -> float:
    """The sigma a fraction of the way through the model's schedule (0 = start)."""
    schedule = _model(model).schedule
    if return_actual_sigma and sampling_percent == 0.0:
        return schedule.sigma_max
    if return_actual_sigma and sampling_percent == 1.0:
        return schedule.sigma_min
    return schedule.percent_to_sigma(sampling_percent)


# Samplers


def _choice(name: str, **options: Any) -> Any:
    from diffusion.samplers import SamplerChoice

    return SamplerChoice(name, options)


def _eta(default: float = 1.0, top: float = 100.0) -> Any:
    return Float(default, min=0.0, max=top, step=0.01, round=False)


@node(category=SAMPLERS, outputs=["SAMPLER"], display_name="KSamplerSelect")
def KSamplerSelect(sampler_name: str = Combo(SAMPLER_NAMES)) -> Any:
    """A sampler by name, with its default options."""
    return _choice(sampler_name)


@node(category=SAMPLERS, outputs=["SAMPLER"], display_name="SamplerEulerAncestral")
def SamplerEulerAncestral(eta: float = _eta(), s_noise: float = _eta()) -> Any:
    """Euler ancestral: eta scales the fresh noise of each step (0 = Euler), s_noise its amplitude."""
    return _choice("euler_ancestral", eta=eta, s_noise=s_noise)


@node(category=SAMPLERS, outputs=["SAMPLER"], display_name="SamplerEulerAncestralCFG++")
def SamplerEulerAncestralCFGPP(eta: float = _eta(1.0, 1.0), s_noise: float = _eta(1.0, 10.0)) -> Any:
    """Euler ancestral with CFG++ (re-noise along the unguided estimate; use a low cfg)."""
    return _choice("euler_ancestral_cfg_pp", eta=eta, s_noise=s_noise)


@node(category=SAMPLERS, outputs=["SAMPLER"], display_name="SamplerLMS")
def SamplerLMS(order: int = Int(4, min=1, max=100)) -> Any:
    """Linear multistep of the given order."""
    return _choice("lms", order=order)


@node(category=SAMPLERS, outputs=["SAMPLER"], display_name="SamplerDPMPP_3M_SDE")
def SamplerDPMPP_3M_SDE(eta: float = _eta(), s_noise: float = _eta(), noise_device: str = Combo(("gpu", "cpu"))) -> Any:
    """DPM-Solver++(3M) SDE; noise_device picks where its Brownian tree lives."""
    return _choice("dpmpp_3m_sde" if noise_device == "cpu" else "dpmpp_3m_sde_gpu", eta=eta, s_noise=s_noise)


@node(category=SAMPLERS, outputs=["SAMPLER"], display_name="SamplerDPMPP_2M_SDE")
def SamplerDPMPP_2M_SDE(
    solver_type: str = Combo(("midpoint", "heun")),
    eta: float = _eta(),
    s_noise: float = _eta(),
    noise_device: str = Combo(("gpu", "cpu")),
) -> Any:
    """DPM-Solver++(2M) SDE with the midpoint or Heun correction."""
    name = "dpmpp_2m_sde" if noise_device == "cpu" else "dpmpp_2m_sde_gpu"
    return _choice(name, eta=eta, s_noise=s_noise, solver_type=solver_type)


@node(category=SAMPLERS, outputs=["SAMPLER"], display_name="SamplerDPMPP_SDE")
def SamplerDPMPP_SDE(
    eta: float = _eta(),
    s_noise: float = _eta(),
    r: float = Float(0.5, min=0.0, max=100.0, step=0.01, round=False),
    noise_device: str = Combo(("gpu", "cpu")),
) -> Any:
    """DPM-Solver++ SDE with its intermediate stage at fraction r of each step."""
    name = "dpmpp_sde" if noise_device == "cpu" else "dpmpp_sde_gpu"
    return _choice(name, eta=eta, s_noise=s_noise, r=r)


@node(category=SAMPLERS, outputs=["SAMPLER"], display_name="SamplerDPMPP_2S_Ancestral")
def SamplerDPMPP_2S_Ancestral(eta: float = _eta(), s_noise: float = _eta()) -> Any:
    """DPM-Solver++(2S) ancestral."""
    return _choice("dpmpp_2s_ancestral", eta=eta, s_noise=s_noise)


@node(category=SAMPLERS, outputs=["SAMPLER"], display_name="SamplerDPMAdaptative")
def SamplerDPMAdaptative(
    order: int = Int(3, min=2, max=3),
    rtol: float = Float(0.05, min=0.0, max=100.0, step=0.01, round=False),
    atol: float = Float(0.0078, min=0.0, max=100.0, step=0.01, round=False),
    h_init: float = Float(0.05, min=0.0, max=100.0, step=0.01, round=False),
    pcoeff: float = Float(0.0, min=0.0, max=100.0, step=0.01, round=False),
    icoeff: float = Float(1.0, min=0.0, max=100.0, step=0.01, round=False),
    dcoeff: float = Float(0.0, min=0.0, max=100.0, step=0.01, round=False),
    accept_safety: float = Float(0.81, min=0.0, max=100.0, step=0.01, round=False),
    eta: float = _eta(0.0),
    s_noise: float = _eta(),
) -> Any:
    """Adaptive-step DPM-Solver: tolerances and the PID step-size controller's coefficients."""
    return _choice(
        "dpm_adaptive",
        order=order,
        rtol=rtol,
        atol=atol,
        h_init=h_init,
        pcoeff=pcoeff,
        icoeff=icoeff,
        dcoeff=dcoeff,
        accept_safety=accept_safety,
        eta=eta,
        s_noise=s_noise,
    )


@node(category=SAMPLERS, outputs=["SAMPLER"], display_name="SamplerER_SDE")
def SamplerER_SDE(
    solver_type: str = Combo(("ER-SDE", "Reverse-time SDE", "ODE")),
    max_stage: int = Int(3, min=1, max=3),
    eta: float = Float(
        1.0,
        min=0.0,
        max=100.0,
        step=0.01,
        round=False,
        tooltip="Stochastic strength of reverse-time SDE.\nWhen eta=0, it reduces to deterministic ODE. "
        "This setting doesn't apply to ER-SDE solver type.",
    ),
    s_noise: float = _eta(),
) -> Any:
    """ER-SDE-Solver with its noise scale function, stage count and noise strength."""
    return _choice("er_sde", solver_type=solver_type, max_stage=max_stage, eta=eta, s_noise=s_noise)


@node(category=SAMPLERS, outputs=["SAMPLER"], display_name="SamplerSASolver")
def SamplerSASolver(
    model: Any = Socket("MODEL"),
    eta: float = _eta(1.0, 10.0),
    sde_start_percent: float = Float(0.2, min=0.0, max=1.0, step=0.001),
    sde_end_percent: float = Float(0.8, min=0.0, max=1.0, step=0.001),
    s_noise: float = _eta(),
    predictor_order: int = Int(3, min=1, max=6),
    corrector_order: int = Int(4, min=0, max=6),
    use_pece: bool = Boolean(None),
    simple_order_2: bool = Boolean(None),
) -> Any:
    """SA-Solver: stochastic between the two percentages of the model's schedule, an ODE outside."""
    schedule = _model(model).schedule
    return _choice(
        "sa_solver",
        sde_sigmas=(schedule.percent_to_sigma(sde_start_percent), schedule.percent_to_sigma(sde_end_percent)),
        eta=eta,
        s_noise=s_noise,
        predictor_order=predictor_order,
        corrector_order=corrector_order,
        use_pece=use_pece,
        simple_order_2=simple_order_2,
    )


# Guiders


def _guider(model: Any, sets: tuple[tuple[str, Any], ...], rule: Any) -> Any:
    from diffusion.guidance import Guider

    return Guider(_model(model), sets, rule)


@node(category=GUIDERS, outputs=["GUIDER"], display_name="CFGGuider")
def CFGGuider(
    model: Any = Socket("MODEL"),
    positive: Any = Socket("CONDITIONING"),
    negative: Any = Socket("CONDITIONING"),
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01),
) -> Any:
    """Classifier-free guidance between a positive and a negative prompt."""
    from diffusion.guidance import CFG

    return _guider(model, (("positive", positive), ("negative", negative)), CFG(cfg))


@node(category=GUIDERS, outputs=["GUIDER"], display_name="DualCFGGuider")
def DualCFGGuider(
    model: Any = Socket("MODEL"),
    cond1: Any = Socket("CONDITIONING"),
    cond2: Any = Socket("CONDITIONING"),
    negative: Any = Socket("CONDITIONING"),
    cfg_conds: float = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01),
    cfg_cond2_negative: float = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01),
    style: str = Combo(("regular", "nested")),
) -> Any:
    """Guide cond1 against cond2 and cond2 against the negative, each with its own scale."""
    from diffusion.guidance import DualCFG

    rule = DualCFG(cfg_conds, cfg_cond2_negative, nested=style == "nested")
    return _guider(model, (("cond1", cond1), ("cond2", cond2), ("negative", negative)), rule)


@node(category=GUIDERS, outputs=["GUIDER"], display_name="BasicGuider")
def BasicGuider(model: Any = Socket("MODEL"), conditioning: Any = Socket("CONDITIONING")) -> Any:
    """One prompt, no negative (for guidance-distilled models)."""
    from diffusion.guidance import CFG

    return _guider(model, (("conditioning", conditioning),), CFG(1.0))


@node(category="_for_testing", outputs=["GUIDER"], display_name="PerpNegGuider", experimental=True)
def PerpNegGuider(
    model: Any = Socket("MODEL"),
    positive: Any = Socket("CONDITIONING"),
    negative: Any = Socket("CONDITIONING"),
    empty_conditioning: Any = Socket("CONDITIONING"),
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01),
    neg_scale: float = Float(1.0, min=0.0, max=100.0, step=0.01),
) -> Any:
    """Perp-Neg: the negative acts only where it does not oppose the positive (relative to an empty prompt)."""
    from diffusion.guidance import PerpNeg

    sets = (("positive", positive), ("negative", negative), ("empty_conditioning", empty_conditioning))
    return _guider(model, sets, PerpNeg(cfg, neg_scale))


# Noise


@node(category=NOISE, outputs=["NOISE"], display_name="RandomNoise")
def RandomNoise(noise_seed: int = Int(0, min=0, max=MAX_SEED, control_after_generate=True)) -> Any:
    """Seeded Gaussian noise in the latent's shape (the same as KSampler's for the same seed)."""
    from diffusion.sampling import SeededNoise

    return SeededNoise(noise_seed)


@node(category=NOISE, outputs=["NOISE"], display_name="DisableNoise")
def DisableNoise() -> Any:
    """No initial noise: sample the latent as it is (to continue a partly denoised one)."""
    from diffusion.sampling import SeededNoise

    return SeededNoise(0, enabled=False)


@node(
    category="_for_testing/custom_sampling/noise",
    outputs=["LATENT"],
    display_name="AddNoise",
    experimental=True,
)
def AddNoise(
    model: Any = Socket("MODEL"),
    noise: Any = Socket("NOISE"),
    sigmas: Any = Socket("SIGMAS"),
    latent_image: Any = Socket("LATENT"),
) -> dict[str, Any]:
    """Noise the latent to the schedule's span (first sigma minus last) without sampling."""
    import torch

    from diffusion.sampling import SeededNoise

    _model(model)
    noise = _socket(noise, SeededNoise, "noise", "RandomNoise or DisableNoise")
    sigmas = _sigmas(sigmas)
    if len(sigmas) == 0:
        return latent_image
    samples = latent_image["samples"]
    scale = (sigmas[0] - sigmas[-1]).abs() if len(sigmas) > 1 else sigmas[0]
    noisy = samples.float() + noise.generate(latent_image) * float(scale)
    return dict(latent_image) | {"samples": torch.nan_to_num(noisy, nan=0.0, posinf=0.0, neginf=0.0)}


# Sampling


@node(
    category="sampling/custom_sampling",
    outputs=[Out("LATENT", "output"), Out("LATENT", "denoised_output")],
    display_name="SamplerCustom",
)
def SamplerCustom(
    model: Any = Socket("MODEL"),
    add_noise: bool = Boolean(True),
    noise_seed: int = Int(0, min=0, max=MAX_SEED, control_after_generate=True),
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01),
    positive: Any = Socket("CONDITIONING"),
    negative: Any = Socket("CONDITIONING"),
    sampler: Any = Socket("SAMPLER"),
    sigmas: Any = Socket("SIGMAS"),
    latent_image: Any = Socket("LATENT"),
    *,
    ctx: NodeContext,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sample with classifier-free guidance, any sampler and any sigmas; also returns the last x0 estimate."""
    from diffusion.guidance import CFG, Guider
    from diffusion.sampling import SeededNoise, run

    model = _model(model)
    guider = Guider(model, (("positive", positive), ("negative", negative)), CFG(cfg))
    initial = SeededNoise(noise_seed, enabled=add_noise).generate(latent_image)
    sigmas = _sigmas(sigmas)
    return run(
        guider, _sampler(sampler), sigmas, latent_image, initial, noise_seed, step_reporter(ctx, model), ctx.warn
    )


@node(
    category="sampling/custom_sampling",
    outputs=[Out("LATENT", "output"), Out("LATENT", "denoised_output")],
    display_name="SamplerCustomAdvanced",
)
def SamplerCustomAdvanced(
    noise: Any = Socket("NOISE"),
    guider: Any = Socket("GUIDER"),
    sampler: Any = Socket("SAMPLER"),
    sigmas: Any = Socket("SIGMAS"),
    latent_image: Any = Socket("LATENT"),
    *,
    ctx: NodeContext,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sample with a guider (CFG, dual CFG, Perp-Neg, ...), a noise source, a sampler and sigmas."""
    from diffusion.guidance import Guider
    from diffusion.sampling import SeededNoise, run

    guider = _socket(guider, Guider, "guider", "a *Guider node")
    noise = _socket(noise, SeededNoise, "noise", "RandomNoise or DisableNoise")
    report = step_reporter(ctx, guider.model)
    sigmas = _sigmas(sigmas)
    return run(
        guider, _sampler(sampler), sigmas, latent_image, noise.generate(latent_image), noise.seed, report, ctx.warn
    )
