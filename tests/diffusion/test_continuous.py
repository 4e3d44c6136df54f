"""Continuous noise levels (ModelSamplingContinuousEDM/V): the sigma range, the time inputs and the EDM/v
scalings against values computed by hand, and a sampling run on them."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from diffusion.continuous import ContinuousSchedule
from diffusion.latent_format import playground_v25
from diffusion.model import DiffusionModel
from diffusion.sampling import SampleRequest, sample
from diffusion.schedulers import sigmas_for
from tests.diffusion.tiny_patch_models import prompts, run


def test_edm_schedule() -> None:
    s = ContinuousSchedule.between(0.002, 120.0, "edm")
    assert len(s.sigmas) == 1000
    assert s.sigma_min == pytest.approx(0.002, rel=1e-5) and s.sigma_max == pytest.approx(120.0, rel=1e-5)
    ratio = s.sigmas[1:] / s.sigmas[:-1]  # evenly spaced in log-sigma
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-4)
    assert s.sigma_to_t(torch.tensor([math.e])).item() == pytest.approx(0.25)  # ln(e) / 4
    assert s.sigma_to_t(torch.tensor([1.0])).item() == 0.0
    assert s.t_to_sigma(torch.tensor([0.5])).item() == pytest.approx(math.e**2, rel=1e-6)
    assert s.percent_to_sigma(0.5) == pytest.approx(math.sqrt(0.002 * 120.0), rel=1e-5)  # the geometric middle
    assert s.percent_to_sigma(0.0) > 1e8 and s.percent_to_sigma(1.0) == 0.0
    assert s.sigma_to_percent(math.sqrt(0.002 * 120.0)) == pytest.approx(0.5, abs=1e-5)
    assert s.sigma_to_percent(500.0) == 0.0 and s.sigma_to_percent(0.0) == 1.0


def test_v_schedule() -> None:
    s = ContinuousSchedule.between(0.03, 500.0, "v")
    assert s.sigma_to_t(torch.tensor([1.0])).item() == pytest.approx(0.5)  # 2/pi atan(1)
    assert s.sigma_to_t(torch.tensor([math.sqrt(3)])).item() == pytest.approx(2 / 3)  # atan = pi/3
    assert s.t_to_sigma(torch.tensor([0.5])).item() == pytest.approx(1.0)
    assert s.percent_to_sigma(0.25) == pytest.approx(math.exp(math.log(0.03) + 0.75 * math.log(500 / 0.03)), rel=1e-5)


def test_bad_ranges() -> None:
    with pytest.raises(ValueError, match="sigma_min"):
        ContinuousSchedule.between(0.0, 10.0, "edm")
    with pytest.raises(ValueError, match="sigma_min"):
        ContinuousSchedule.between(5.0, 1.0, "edm")
    with pytest.raises(ValueError, match="time input"):
        ContinuousSchedule.between(0.1, 1.0, "cosine")
    with pytest.raises(ValueError, match="zsnr"):
        ContinuousSchedule.between(0.1, 1.0, "edm").zero_terminal_snr()


def test_schedulers_use_the_range() -> None:
    s = ContinuousSchedule.between(0.002, 120.0, "edm")
    karras = sigmas_for(s, "karras", 5)
    assert karras[0].item() == pytest.approx(120.0, rel=1e-4) and karras[-2].item() == pytest.approx(0.002, rel=1e-3)
    normal = sigmas_for(s, "normal", 4)  # uniform in the time input, i.e. in log-sigma here
    assert normal[0].item() == pytest.approx(120.0, rel=1e-4)
    assert normal[1].item() == pytest.approx(120.0 * (0.002 / 120.0) ** (1 / 3), rel=1e-3)


def test_edm_and_v_scalings(attention_model: DiffusionModel) -> None:
    model = attention_model
    edm = replace(model, prediction="edm", sigma_data=0.5)
    c_skip, c_out, c_in = (c.item() for c in edm.scalings(torch.tensor([0.5])))
    assert (c_skip, c_out, c_in) == pytest.approx((0.5, 0.25 / math.sqrt(0.5), 1 / math.sqrt(0.5)))
    v = replace(model, prediction="v")
    c_skip, c_out, c_in = (c.item() for c in v.scalings(torch.tensor([1.0])))
    assert (c_skip, c_out, c_in) == pytest.approx((0.5, -1 / math.sqrt(2), 1 / math.sqrt(2)))


def test_sampling_on_a_continuous_schedule(attention_model: DiffusionModel) -> None:
    model = attention_model
    edm = replace(model, prediction="edm", sigma_data=0.5, schedule=ContinuousSchedule.between(0.002, 80.0, "edm"))
    out = run(edm, scheduler="karras")
    assert out.shape == (1, 4, 8, 8) and bool(torch.isfinite(out).all())
    assert not torch.allclose(out, run(model, scheduler="karras"), atol=1e-3)
    v = replace(model, prediction="v", schedule=ContinuousSchedule.between(0.03, 500.0, "v"))
    assert bool(torch.isfinite(run(v)).all())


def test_playground_latent_format_round_trips() -> None:
    fmt = playground_v25(0.13025)
    latent = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(fmt.from_model(fmt.to_model(latent)), latent, atol=1e-5)
    zero = fmt.to_model(torch.zeros(1, 4, 1, 1)).flatten().tolist()  # the VAE's zero: minus mean over std, halved
    expected = [1.6574 * 0.5 / 8.4927, -1.886 * 0.5 / 5.9022, 1.383 * 0.5 / 6.5498, -2.5155 * 0.5 / 5.2299]
    assert zero == pytest.approx(expected)
    one = fmt.to_model(torch.full((1, 4, 1, 1), 0.13025)).flatten()[0].item()  # a raw VAE latent of 1
    assert one == pytest.approx((1 + 1.6574) * 0.5 / 8.4927)
    with pytest.raises(ValueError, match="channels"):
        fmt.to_model(torch.zeros(1, 16, 2, 2))


def test_sampling_in_the_model_latent_space(attention_model: DiffusionModel) -> None:
    model = replace(attention_model, prediction="edm", sigma_data=0.5)
    model = replace(model, schedule=ContinuousSchedule.between(0.002, 80.0, "edm"))
    playground = replace(model, latent_format=playground_v25(0.13025))
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    seen: list[torch.Tensor] = []

    def request(m: DiffusionModel) -> SampleRequest:
        positive, negative = prompts()
        return SampleRequest(m, 2, 2, 4.0, "euler", "karras", positive, negative, latent)

    out = sample(request(playground), lambda i, n, x0: seen.append(x0))["samples"]
    plain = sample(request(model))["samples"]
    assert out.shape == plain.shape and not torch.allclose(out, plain, atol=1e-3)
    assert torch.allclose(seen[-1], out, atol=1e-4)  # previews are in Loom's latent space too
