"""KSampler and KSamplerAdvanced: denoise a latent with a model, conditioning, sampler and scheduler."""

from __future__ import annotations

from typing import Any

from diffusion.names import SAMPLER_NAMES, SCHEDULER_NAMES
from engine.context import NodeContext
from engine.native import Combo, Float, Int, Socket, node
from nodes.shared import step_reporter

MAX_SEED = 0xFFFF_FFFF_FFFF_FFFF


def _run(ctx: NodeContext, **request: Any) -> dict[str, Any]:
    """Build the request, report each step (with a throttled latent preview), run it."""
    from diffusion.sampling import SampleRequest, sample

    if request["model"] is None:
        raise ValueError("model: the checkpoint has no diffusion model")
    return sample(SampleRequest(**request), step_reporter(ctx, request["model"]), ctx.warn)


@node(category="sampling", outputs=["LATENT"])
def KSampler(
    model: Any = Socket("MODEL"),
    seed: int = Int(0, min=0, max=MAX_SEED, control_after_generate=True, tooltip="Seed of the initial noise."),
    steps: int = Int(20, min=1, max=10000),
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="Classifier-free guidance scale."),
    sampler_name: str = Combo(SAMPLER_NAMES),
    scheduler: str = Combo(SCHEDULER_NAMES),
    positive: Any = Socket("CONDITIONING"),
    negative: Any = Socket("CONDITIONING"),
    latent_image: Any = Socket("LATENT"),
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01, tooltip="Below 1: keep part of the input (img2img)."),
    *,
    ctx: NodeContext,
) -> dict[str, Any]:
    """Denoise the latent; with denoise < 1 only the last part of the schedule runs, keeping the input's layout."""
    return _run(
        ctx,
        model=model,
        seed=seed,
        steps=steps,
        cfg=cfg,
        sampler=sampler_name,
        scheduler=scheduler,
        positive=positive,
        negative=negative,
        latent=latent_image,
        denoise=denoise,
    )


@node(category="sampling", outputs=["LATENT"], display_name="KSampler (Advanced)")
def KSamplerAdvanced(
    model: Any = Socket("MODEL"),
    add_noise: str = Combo(("enable", "disable")),
    noise_seed: int = Int(0, min=0, max=MAX_SEED, control_after_generate=True),
    steps: int = Int(20, min=1, max=10000),
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1, round=0.01),
    sampler_name: str = Combo(SAMPLER_NAMES),
    scheduler: str = Combo(SCHEDULER_NAMES),
    positive: Any = Socket("CONDITIONING"),
    negative: Any = Socket("CONDITIONING"),
    latent_image: Any = Socket("LATENT"),
    start_at_step: int = Int(0, min=0, max=10000),
    end_at_step: int = Int(10000, min=0, max=10000),
    return_with_leftover_noise: str = Combo(("disable", "enable")),
    *,
    ctx: NodeContext,
) -> dict[str, Any]:
    """Run steps start_at_step..end_at_step of a `steps`-step schedule, e.g. to hand over between models."""
    return _run(
        ctx,
        model=model,
        seed=noise_seed,
        steps=steps,
        cfg=cfg,
        sampler=sampler_name,
        scheduler=scheduler,
        positive=positive,
        negative=negative,
        latent=latent_image,
        add_noise=add_noise == "enable",
        start_step=start_at_step,
        last_step=end_at_step,
        force_full_denoise=return_with_leftover_noise != "enable",
    )
