"""The custom-sampling nodes through the registry: schedulers and sigma operations on small tensors, sampler and
guider options, and SamplerCustom / SamplerCustomAdvanced against KSampler on the demo checkpoint."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from diffusion.demo import DEMO_NAME
from diffusion.names import SAMPLER_NAMES, SCHEDULER_NAMES
from diffusion.published_schedules import ALIGN_YOUR_STEPS
from diffusion.samplers import SamplerChoice
from diffusion.schedulers import DiscreteSchedule, sigmas_for
from engine.environment import NodeEnvironment
from engine.events import NodeProgress
from engine.registry import NodeRegistry
from tests.nodes.conftest import Runner

SCHEDULE = DiscreteSchedule.scaled_linear(0.00085, 0.012, 1000)


class _Model:
    """What the schedule-only nodes read from a MODEL."""

    schedule = SCHEDULE


@pytest.fixture
def run(mreg: NodeRegistry, menv: NodeEnvironment) -> Runner:
    return Runner(mreg, menv)


def test_combos_list_the_one_name_table(mreg: NodeRegistry) -> None:
    for class_type in ("KSampler", "KSamplerAdvanced"):
        required = mreg.get(class_type).schema()["input"]["required"]
        assert tuple(required["sampler_name"][0]) == SAMPLER_NAMES
        assert tuple(required["scheduler"][0]) == SCHEDULER_NAMES
    assert tuple(mreg.get("KSamplerSelect").schema()["input"]["required"]["sampler_name"][0]) == SAMPLER_NAMES


def test_range_schedulers(run: Runner) -> None:
    karras = run("KarrasScheduler", steps=4, sigma_max=10.0, sigma_min=0.1, rho=7.0)
    ramp = torch.linspace(0, 1, 4)
    want = (10.0 ** (1 / 7) + ramp * (0.1 ** (1 / 7) - 10.0 ** (1 / 7))) ** 7
    assert torch.allclose(karras, torch.cat([want, torch.zeros(1)]))
    expo = run("ExponentialScheduler", steps=3, sigma_max=8.0, sigma_min=0.5)
    assert torch.allclose(expo, torch.tensor([8.0, 2.0, 0.5, 0.0]))
    poly = run("PolyexponentialScheduler", steps=3, sigma_max=8.0, sigma_min=0.5, rho=1.0)
    assert torch.allclose(poly, expo)
    vp = run("VPScheduler", steps=2, beta_d=19.9, beta_min=0.1, eps_s=0.001)
    assert vp[0] == pytest.approx(math.sqrt(math.expm1(19.9 / 2 + 0.1)), rel=1e-5) and float(vp[-1]) == 0
    laplace = run("LaplaceScheduler", steps=5, sigma_max=14.6, sigma_min=0.03, mu=0.0, beta=0.5)
    assert len(laplace) == 5 and float(laplace[0]) == pytest.approx(14.6) and float(laplace[-1]) == pytest.approx(0.03)
    assert float(laplace[2]) == pytest.approx(1.0, rel=1e-3)  # the median: e^mu


def test_model_schedulers(run: Runner) -> None:
    basic = run("BasicScheduler", model=_Model(), scheduler="karras", steps=5, denoise=1.0)
    assert torch.equal(basic, sigmas_for(SCHEDULE, "karras", 5))
    half = run("BasicScheduler", model=_Model(), scheduler="normal", steps=5, denoise=0.5)
    assert torch.equal(half, sigmas_for(SCHEDULE, "normal", 10)[-6:])
    assert len(run("BasicScheduler", model=_Model(), scheduler="normal", steps=5, denoise=0.0)) == 0
    beta = run("BetaSamplingScheduler", model=_Model(), steps=6, alpha=0.6, beta=0.6)
    assert torch.equal(beta, sigmas_for(SCHEDULE, "beta", 6))
    turbo = run("SDTurboScheduler", model=_Model(), steps=2, denoise=1.0)
    assert torch.allclose(turbo, torch.stack([SCHEDULE.sigmas[999], SCHEDULE.sigmas[899], torch.tensor(0.0)]))
    start = run("SDTurboScheduler", model=_Model(), steps=1, denoise=0.5)
    assert torch.allclose(start, torch.stack([SCHEDULE.sigmas[499], torch.tensor(0.0)]))


def test_published_schedules(run: Runner) -> None:
    ays = run("AlignYourStepsScheduler", model_type="SD1", steps=10, denoise=1.0)
    assert torch.allclose(ays, torch.tensor([*ALIGN_YOUR_STEPS["SD1"][:-1], 0.0]))
    longer = run("AlignYourStepsScheduler", model_type="SDXL", steps=20, denoise=1.0)
    assert len(longer) == 21 and float(longer[0]) == pytest.approx(14.6146412293) and float(longer[-1]) == 0
    assert float(longer[2]) == pytest.approx(
        ALIGN_YOUR_STEPS["SDXL"][1], rel=1e-6
    )  # every other point is a table entry
    half = run("AlignYourStepsScheduler", model_type="SD1", steps=10, denoise=0.5)
    assert torch.allclose(half, torch.tensor([*ALIGN_YOUR_STEPS["SD1"][5:-1], 0.0]))
    oss = run("OptimalStepsScheduler", model_type="FLUX", steps=10, denoise=1.0)
    assert float(oss[0]) == pytest.approx(0.9968) and float(oss[-1]) == 0 and len(oss) == 11
    assert len(run("OptimalStepsScheduler", model_type="Wan", steps=10, denoise=0.0)) == 0


def test_gits_follows_the_published_table(run: Runner) -> None:
    # Rows typed from the GITS paper's table (coeff 1.20: 10 steps; coeff 0.80: 5 steps), ending at 0.
    ten = [14.61464119, 5.85520077, 2.84484982, 1.67050016, 1.08895338, 0.74807048, 0.50118381, 0.32104823]
    ten += [0.19894916, 0.09824532, 0.0]
    assert torch.allclose(run("GITSScheduler", coeff=1.20, steps=10, denoise=1.0), torch.tensor(ten))
    five = [14.61464119, 11.54541874, 7.49001646, 5.85520077, 2.05039096, 0.0]
    assert torch.allclose(run("GITSScheduler", coeff=0.80, steps=5, denoise=1.0), torch.tensor(five))
    # denoise keeps the last steps of the full schedule
    assert torch.allclose(run("GITSScheduler", coeff=1.20, steps=10, denoise=0.5), torch.tensor(ten[-6:]))
    assert len(run("GITSScheduler", coeff=1.20, steps=10, denoise=0.0)) == 0
    # beyond 20 steps the 20-step row is stretched log-linearly: its ends are kept
    long = run("GITSScheduler", coeff=1.00, steps=40, denoise=1.0)
    assert len(long) == 41 and float(long[0]) == pytest.approx(14.61464119) and float(long[-1]) == 0.0
    assert float(long[2]) == pytest.approx(12.2308979, rel=1e-5)  # every other point is a table entry
    with pytest.raises(ValueError, match=r"coeff: GITS publishes tables for 0\.80, 0\.85"):
        run("GITSScheduler", coeff=1.22, steps=10, denoise=1.0)


def test_sigma_operations(run: Runner) -> None:
    sigmas = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.0])
    high, low = run("SplitSigmas", sigmas=sigmas, step=2)
    assert high.tolist() == [8.0, 4.0, 2.0] and low.tolist() == [2.0, 1.0, 0.0]
    high, low = run("SplitSigmasDenoise", sigmas=sigmas, denoise=0.25)
    assert high.tolist() == [8.0, 4.0, 2.0, 1.0] and low.tolist() == [1.0, 0.0]
    assert run("FlipSigmas", sigmas=sigmas).tolist() == pytest.approx([0.0001, 1.0, 2.0, 4.0, 8.0])
    assert run("SetFirstSigma", sigmas=sigmas, sigma=20.0).tolist() == [20.0, 4.0, 2.0, 1.0, 0.0]
    assert sigmas[0] == 8.0  # inputs are not modified
    linear = run(
        "ExtendIntermediateSigmas", sigmas=sigmas, steps=2, start_at_sigma=-1.0, end_at_sigma=2.0, spacing="linear"
    )
    assert linear.tolist() == [8.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.0]
    cosine = run(
        "ExtendIntermediateSigmas", sigmas=sigmas, steps=3, start_at_sigma=5.0, end_at_sigma=3.0, spacing="cosine"
    )
    assert cosine.tolist() == pytest.approx(
        [8.0, 4.0, 4 - 2 * math.sin(math.pi / 6), 4 - 2 * math.sin(math.pi / 3), 2.0, 1.0, 0.0]
    )
    assert run("ManualSigmas", sigmas="14.6, 7 3.5e0,1").tolist() == pytest.approx([14.6, 7.0, 3.5, 1.0])
    with pytest.raises(ValueError, match="sigmas"):
        run("FlipSigmas", sigmas=[1.0, 0.0])


def test_sampling_percent_to_sigma(run: Runner) -> None:
    assert run("SamplingPercentToSigma", model=_Model(), sampling_percent=0.5, return_actual_sigma=False) == (
        pytest.approx(float(SCHEDULE.t_to_sigma(torch.tensor(499.5))))
    )
    assert run("SamplingPercentToSigma", model=_Model(), sampling_percent=0.0, return_actual_sigma=False) > 1e8
    assert run("SamplingPercentToSigma", model=_Model(), sampling_percent=1.0, return_actual_sigma=False) == 0.0
    actual = run("SamplingPercentToSigma", model=_Model(), sampling_percent=0.0, return_actual_sigma=True)
    assert actual == pytest.approx(SCHEDULE.sigma_max)


def test_sampler_option_nodes(run: Runner) -> None:
    assert run("KSamplerSelect", sampler_name="heun") == SamplerChoice("heun")
    assert run("SamplerEulerAncestral", eta=0.5, s_noise=1.0) == SamplerChoice(
        "euler_ancestral", {"eta": 0.5, "s_noise": 1.0}
    )
    assert run("SamplerDPMPP_3M_SDE", eta=1.0, s_noise=1.0, noise_device="cpu").name == "dpmpp_3m_sde"
    assert run("SamplerDPMPP_3M_SDE", eta=1.0, s_noise=1.0, noise_device="gpu").name == "dpmpp_3m_sde_gpu"
    two_m = run("SamplerDPMPP_2M_SDE", solver_type="heun", eta=1.0, s_noise=1.0, noise_device="cpu")
    assert two_m == SamplerChoice("dpmpp_2m_sde", {"eta": 1.0, "s_noise": 1.0, "solver_type": "heun"})
    assert run("SamplerDPMPP_SDE", eta=1.0, s_noise=1.0, r=0.3, noise_device="gpu").options["r"] == 0.3
    assert run("SamplerLMS", order=3) == SamplerChoice("lms", {"order": 3})
    er = run("SamplerER_SDE", solver_type="ODE", max_stage=2, eta=1.0, s_noise=1.0)
    assert er.name == "er_sde" and er.options["solver_type"] == "ODE" and er.options["max_stage"] == 2
    sa = run(
        "SamplerSASolver",
        model=_Model(),
        eta=1.0,
        sde_start_percent=0.2,
        sde_end_percent=0.8,
        s_noise=1.0,
        predictor_order=3,
        corrector_order=4,
        use_pece=True,
        simple_order_2=False,
    )
    assert sa.options["sde_sigmas"] == (SCHEDULE.percent_to_sigma(0.2), SCHEDULE.percent_to_sigma(0.8))
    assert sa.options["use_pece"] is True


@pytest.fixture(scope="module")
def demo(mreg: NodeRegistry, menv: NodeEnvironment) -> dict[str, Any]:
    run = Runner(mreg, menv)
    model, clip, _vae = run("CheckpointLoaderSimple", ckpt_name=DEMO_NAME)
    pos = run("CLIPTextEncode", text="a fox", clip=clip)
    neg = run("CLIPTextEncode", text="blurry", clip=clip)
    empty = run("CLIPTextEncode", text="", clip=clip)
    latent = run("EmptyLatentImage", width=64, height=64, batch_size=1)
    return {"model": model, "pos": pos, "neg": neg, "empty": empty, "latent": latent}


def _ksampler(run: Runner, demo: dict[str, Any], cfg: float = 6.0, sampler: str = "euler") -> torch.Tensor:
    out = run(
        "KSampler",
        model=demo["model"],
        seed=3,
        steps=3,
        cfg=cfg,
        sampler_name=sampler,
        scheduler="karras",
        positive=demo["pos"],
        negative=demo["neg"],
        latent_image=demo["latent"],
        denoise=1.0,
    )
    return out["samples"]


def _advanced(run: Runner, demo: dict[str, Any], guider: Any, sampler: str = "euler") -> tuple[Any, Any]:
    sigmas = run("BasicScheduler", model=demo["model"], scheduler="karras", steps=3, denoise=1.0)
    return run(
        "SamplerCustomAdvanced",
        noise=run("RandomNoise", noise_seed=3),
        guider=guider,
        sampler=run("KSamplerSelect", sampler_name=sampler),
        sigmas=sigmas,
        latent_image=demo["latent"],
    )


def test_sampler_custom_matches_ksampler(run: Runner, demo: dict[str, Any]) -> None:
    sigmas = run("BasicScheduler", model=demo["model"], scheduler="karras", steps=3, denoise=1.0)
    out, denoised = run(
        "SamplerCustom",
        model=demo["model"],
        add_noise=True,
        noise_seed=3,
        cfg=6.0,
        positive=demo["pos"],
        negative=demo["neg"],
        sampler=run("KSamplerSelect", sampler_name="euler"),
        sigmas=sigmas,
        latent_image=demo["latent"],
    )
    assert torch.equal(out["samples"], _ksampler(run, demo))
    assert torch.equal(denoised["samples"], out["samples"])  # Euler's step to 0 lands on the last x0 estimate
    progress = [e for e in run.events if isinstance(e, NodeProgress)]
    assert [(e.value, e.max) for e in progress][:3] == [(1, 3), (2, 3), (3, 3)]


def test_advanced_with_cfg_guider_matches_ksampler(run: Runner, demo: dict[str, Any]) -> None:
    guider = run("CFGGuider", model=demo["model"], positive=demo["pos"], negative=demo["neg"], cfg=6.0)
    out, _ = _advanced(run, demo, guider, "dpmpp_2m")
    assert torch.equal(out["samples"], _ksampler(run, demo, sampler="dpmpp_2m"))


def test_guiders_reduce_to_cfg(run: Runner, demo: dict[str, Any]) -> None:
    """DualCFG with cond2 = negative is CFG at cfg_conds; Perp-Neg with neg_scale 0 and an empty prompt equal
    to the negative is CFG; BasicGuider is CFG at 1."""
    m, pos, neg = demo["model"], demo["pos"], demo["neg"]
    cfg = _advanced(run, demo, run("CFGGuider", model=m, positive=pos, negative=neg, cfg=6.0))[0]["samples"]
    dual = run(
        "DualCFGGuider",
        model=m,
        cond1=pos,
        cond2=neg,
        negative=neg,
        cfg_conds=6.0,
        cfg_cond2_negative=3.0,
        style="regular",
    )
    assert torch.allclose(_advanced(run, demo, dual)[0]["samples"], cfg, atol=1e-4)
    perp = run(
        "PerpNegGuider", model=m, positive=pos, negative=demo["empty"], empty_conditioning=neg, cfg=6.0, neg_scale=0.0
    )
    assert torch.allclose(_advanced(run, demo, perp)[0]["samples"], cfg, atol=1e-4)
    basic = _advanced(run, demo, run("BasicGuider", model=m, conditioning=pos))[0]["samples"]
    one = _advanced(run, demo, run("CFGGuider", model=m, positive=pos, negative=neg, cfg=1.0))[0]["samples"]
    assert torch.equal(basic, one)
    nested = run(
        "DualCFGGuider",
        model=m,
        cond1=pos,
        cond2=neg,
        negative=neg,
        cfg_conds=6.0,
        cfg_cond2_negative=3.0,
        style="nested",
    )
    assert not torch.allclose(_advanced(run, demo, nested)[0]["samples"], cfg, atol=1e-3)


def test_cfg_pp_samplers_run_through_the_guider(run: Runner, demo: dict[str, Any]) -> None:
    guider = run("CFGGuider", model=demo["model"], positive=demo["pos"], negative=demo["neg"], cfg=1.5)
    plain = _advanced(run, demo, guider, "euler")[0]["samples"]
    pp = _advanced(run, demo, guider, "euler_cfg_pp")[0]["samples"]
    assert bool(torch.isfinite(pp).all()) and not torch.allclose(plain, pp)


def test_noise_nodes(run: Runner, demo: dict[str, Any]) -> None:
    latent = {"samples": torch.ones(1, 4, 8, 8)}
    sigmas = torch.tensor([3.0, 1.0, 0.0])
    quiet = run("AddNoise", model=_Model(), noise=run("DisableNoise"), sigmas=sigmas, latent_image=latent)
    assert torch.equal(quiet["samples"], latent["samples"])
    seeded = run("RandomNoise", noise_seed=9)
    noisy = run("AddNoise", model=_Model(), noise=seeded, sigmas=sigmas, latent_image=latent)
    assert torch.allclose(noisy["samples"], 1 + seeded.generate(latent) * 3.0)
    untouched = run(
        "SamplerCustomAdvanced",
        noise=run("DisableNoise"),
        guider=run("BasicGuider", model=demo["model"], conditioning=demo["pos"]),
        sampler=run("KSamplerSelect", sampler_name="euler"),
        sigmas=torch.tensor([1.0]),
        latent_image=demo["latent"],
    )
    assert torch.equal(untouched[0]["samples"], demo["latent"]["samples"])


def test_bad_inputs_name_the_input(run: Runner, demo: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="model"):
        run("BasicScheduler", model=None, scheduler="karras", steps=3, denoise=1.0)
    guider = run("BasicGuider", model=demo["model"], conditioning=demo["pos"])
    with pytest.raises(ValueError, match="sampler"):
        run(
            "SamplerCustomAdvanced",
            noise=run("RandomNoise", noise_seed=1),
            guider=guider,
            sampler=SamplerChoice("nope"),
            sigmas=torch.tensor([1.0, 0.0]),
            latent_image=demo["latent"],
        )
    with pytest.raises(ValueError, match="sampler: expected a SAMPLER"):
        run(
            "SamplerCustomAdvanced",
            noise=run("RandomNoise", noise_seed=1),
            guider=guider,
            sampler="euler",
            sigmas=torch.tensor([1.0, 0.0]),
            latent_image=demo["latent"],
        )
    with pytest.raises(ValueError, match="guider: expected a GUIDER"):
        run(
            "SamplerCustomAdvanced",
            noise=run("RandomNoise", noise_seed=1),
            guider=demo["model"],
            sampler=SamplerChoice("euler"),
            sigmas=torch.tensor([1.0, 0.0]),
            latent_image=demo["latent"],
        )
