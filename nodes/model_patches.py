"""Model options. How each sampling step's estimate is guided: RescaleCFG, CFGZeroStar, CFGNorm, Epsilon Scaling,
Adaptive Projected Guidance, a latent operation on the guidance direction, and guidance with further model calls
(PAG, SAG, Perp-Neg) (DiffusionModel.with_post_guidance); changes inside the UNet: FreeU, HyperTile, token merging,
Deep Shrink (DiffusionModel.with_unet_patch); per-step inpainting masks (Differential Diffusion); and what the
model predicts on which noise levels (ModelSamplingDiscrete, ModelSamplingContinuousEDM/V). Each returns a patched
copy; the input model is unchanged.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from engine.native import Boolean, Combo, Float, Int, Out, Socket, node
from nodes.resize import upscale

MODEL = Socket("MODEL")


def _patched(model: Any, function: Any) -> Any:
    if model is None:
        raise ValueError("model: the checkpoint has no diffusion model")
    return model.with_post_guidance(function)


@node(category="advanced/model", outputs=["MODEL"])
def RescaleCFG(model: Any = MODEL, multiplier: float = Float(0.7, min=0.0, max=1.0, step=0.01)) -> Any:
    """Rescale the guided prediction's spread to the positive one's (for v-prediction and zero-SNR models)."""
    from diffusion.post_guidance import RescaleCFG as Rescale

    return _patched(model, Rescale(multiplier))


@node(category="advanced/guidance", outputs=[Out("MODEL", "patched_model")])
def CFGZeroStar(model: Any = MODEL) -> Any:
    """CFG-Zero*: guide from the negative scaled to best match the positive."""
    from diffusion.post_guidance import CFGZeroStar as ZeroStar

    return _patched(model, ZeroStar())


@node(category="advanced/guidance", outputs=[Out("MODEL", "patched_model")], experimental=True)
def CFGNorm(model: Any = MODEL, strength: float = Float(1.0, min=0.0, max=2.0, step=0.01)) -> Any:
    """Cap the guided prediction's per-pixel norm at the positive prediction's."""
    from diffusion.post_guidance import CFGNorm as Norm

    return _patched(model, Norm(strength))


@node(name="Epsilon Scaling", category="model_patches/unet", outputs=["MODEL"])
def EpsilonScaling(
    model: Any = MODEL, scaling_factor: float = Float(1.005, min=0.5, max=1.5, step=0.001, display="number")
) -> Any:
    """Divide the predicted noise by `scaling_factor` (exposure-bias correction)."""
    from diffusion.post_guidance import EpsilonScaling as Scaling

    return _patched(model, Scaling(scaling_factor))


@node(category="sampling/custom_sampling", outputs=["MODEL"], display_name="Adaptive Projected Guidance")
def APG(
    model: Any = MODEL,
    eta: float = Float(1.0, min=-10.0, max=10.0, step=0.01),
    norm_threshold: float = Float(5.0, min=0.0, max=50.0, step=0.1),
    momentum: float = Float(0.0, min=-5.0, max=1.0, step=0.01),
) -> Any:
    """Adaptive Projected Guidance: damp the part of the guidance parallel to the prediction (less saturation)."""
    from diffusion.post_guidance import AdaptiveProjectedGuidance

    return _patched(model, AdaptiveProjectedGuidance(eta, norm_threshold, momentum))


@node(category="latent/advanced/operations", outputs=["MODEL"], experimental=True)
def LatentApplyOperationCFG(model: Any = MODEL, operation: Any = Socket("LATENT_OPERATION")) -> Any:
    """Apply a latent operation to the guidance direction at every step."""
    from diffusion.post_guidance import OperationOnGuidance

    return _patched(model, OperationOnGuidance(operation))


def _freeu(model: Any, b1: float, b2: float, s1: float, s2: float, adaptive: bool) -> Any:
    from diffusion.unet_patches import FreeU as Patch

    if model is None:
        raise ValueError("model: the checkpoint has no diffusion model")
    return model.with_unet_patch(Patch(b1, b2, s1, s2, adaptive))


FREEU = {"min": 0.0, "max": 10.0, "step": 0.01}


@node(category="model_patches/unet", outputs=["MODEL"])
def FreeU(
    model: Any = MODEL,
    b1: float = Float(1.1, **FREEU),
    b2: float = Float(1.2, **FREEU),
    s1: float = Float(0.9, **FREEU),
    s2: float = Float(0.2, **FREEU),
) -> Any:
    """FreeU: amplify the decoder's backbone features (b1, b2) and damp the low frequencies of its skip features
    (s1, s2), for more detail at no cost."""
    return _freeu(model, b1, b2, s1, s2, adaptive=False)


@node(category="model_patches/unet", outputs=["MODEL"])
def FreeU_V2(
    model: Any = MODEL,
    b1: float = Float(1.3, **FREEU),
    b2: float = Float(1.4, **FREEU),
    s1: float = Float(0.9, **FREEU),
    s2: float = Float(0.2, **FREEU),
) -> Any:
    """FreeU's second version: the backbone amplification follows each position's mean activation."""
    return _freeu(model, b1, b2, s1, s2, adaptive=True)


SAMPLING_PREDICTIONS = {"eps": "eps", "v_prediction": "v", "x0": "x0"}
SAMPLING_TYPES = ("eps", "v_prediction", "lcm", "x0", "img_to_img")


@node(category="advanced/model", outputs=["MODEL"])
def ModelSamplingDiscrete(
    model: Any = MODEL, sampling: str = Combo(SAMPLING_TYPES), zsnr: bool = Boolean(False)
) -> Any:
    """Tell Loom what the model predicts (noise, v or the clean latent), e.g. for a v-prediction checkpoint that
    its tensors do not reveal, and optionally rescale its schedule to zero terminal SNR (for models trained so).
    As in the reference, the discrete schedule is rebuilt from the model's family, so this also undoes an earlier
    ModelSamplingContinuousEDM/V (its sigma range and time input)."""
    from dataclasses import replace

    from diffusion.loader import family_schedule

    if model is None:
        raise ValueError("model: the checkpoint has no diffusion model")
    if sampling not in SAMPLING_PREDICTIONS:
        supported = ", ".join(SAMPLING_PREDICTIONS)
        raise ValueError(f"sampling: Loom's models do not support {sampling!r} yet; choose one of {supported}")
    try:
        schedule = family_schedule(model.family)
    except ValueError as exc:
        raise ValueError(f"model: {exc}; ModelSamplingDiscrete is for U-Net models") from exc
    if zsnr:
        schedule = schedule.zero_terminal_snr()
    return replace(model, prediction=SAMPLING_PREDICTIONS[sampling], schedule=schedule, sigma_data=1.0)


def _unet_model(model: Any) -> Any:
    """The model, when it is a U-Net model whose middle block has self-attention (what the attention guidance
    patches act on)."""
    from diffusion.attention_patches import middle_self_attention

    if model is None:
        raise ValueError("model: the checkpoint has no diffusion model")
    middle_self_attention(model.unet)
    return model


@node(category="model_patches/unet", outputs=["MODEL"])
def PerturbedAttentionGuidance(
    model: Any = MODEL, scale: float = Float(3.0, min=0.0, max=100.0, step=0.01, round=0.01)
) -> Any:
    """Perturbed-Attention Guidance: each step also predicts the positive with the middle block's self-attention
    made the identity, and steers away from that structure-less estimate (sharper structure, any prompt)."""
    from diffusion.guidance_passes import PerturbedAttentionGuidance as Guidance

    return _unet_model(model).with_post_guidance(Guidance(scale))


@node(category="_for_testing", outputs=["MODEL"], display_name="Self-Attention Guidance", experimental=True)
def SelfAttentionGuidance(
    model: Any = MODEL,
    scale: float = Float(0.5, min=-2.0, max=5.0, step=0.01),
    blur_sigma: float = Float(2.0, min=0.0, max=10.0, step=0.1),
) -> Any:
    """Self-Attention Guidance: each step blurs the negative's estimate where the middle block's attention
    concentrates, predicts on it again and steers away from the result (finer detail)."""
    from diffusion.guidance_passes import SelfAttentionGuidance as Guidance

    guidance = Guidance(scale, blur_sigma)
    return _unet_model(model).with_unet_patch(guidance).with_post_guidance(guidance)


@node(
    category="_for_testing",
    outputs=["MODEL"],
    display_name="Perp-Neg (DEPRECATED by PerpNegGuider)",
    experimental=True,
    deprecated=True,
)
def PerpNeg(
    model: Any = MODEL,
    empty_conditioning: Any = Socket("CONDITIONING"),
    neg_scale: float = Float(1.0, min=0.0, max=100.0, step=0.01),
) -> Any:
    """Perp-Neg as a model option: KSampler's positive and negative with an empty prompt, keeping only the part
    of the negative perpendicular to the positive. PerpNegGuider does the same in one batched call."""
    from diffusion.guidance_passes import PerpNegOption

    return _patched(model, PerpNegOption(empty_conditioning, neg_scale))


def _unet_patch(model: Any, patch: Any) -> Any:
    if model is None:
        raise ValueError("model: the checkpoint has no diffusion model")
    return model.with_unet_patch(patch)


@node(category="model_patches/unet", outputs=["MODEL"])
def HyperTile(
    model: Any = MODEL,
    tile_size: int = Int(256, min=1, max=2048),
    swap_size: int = Int(2, min=1, max=128),
    max_depth: int = Int(0, min=0, max=10),
    scale_depth: bool = Boolean(False),
) -> Any:
    """HyperTile: self-attention within tiles of about tile_size pixels at the UNet's shallow depths (faster at
    large sizes); tile layouts vary per step among the swap_size largest that fit."""
    from diffusion.attention_patches import HyperTile as Patch

    return _unet_patch(model, Patch(tile_size, swap_size, max_depth, scale_depth))


@node(category="model_patches/unet", outputs=["MODEL"])
def TomePatchModel(model: Any = MODEL, ratio: float = Float(0.3, min=0.0, max=1.0, step=0.01)) -> Any:
    """Token merging (ToMe for SD): full-resolution self-attention over the tokens left after merging `ratio` of
    the most redundant ones (faster, slightly softer)."""
    from diffusion.attention_patches import TokenMerging

    return _unet_patch(model, TokenMerging(ratio))


DOWNSCALE_METHODS = ("bicubic", "nearest-exact", "bilinear", "area", "bislerp")
PERCENT = {"min": 0.0, "max": 1.0, "step": 0.001}


@node(category="model_patches/unet", outputs=["MODEL"], display_name="PatchModelAddDownscale (Kohya Deep Shrink)")
def PatchModelAddDownscale(
    model: Any = MODEL,
    block_number: int = Int(3, min=1, max=32, step=1),
    downscale_factor: float = Float(2.0, min=0.1, max=9.0, step=0.001),
    start_percent: float = Float(0.0, **PERCENT),
    end_percent: float = Float(0.35, **PERCENT),
    downscale_after_skip: bool = Boolean(True),
    downscale_method: str = Combo(DOWNSCALE_METHODS),
    upscale_method: str = Combo(DOWNSCALE_METHODS),
) -> Any:
    """Kohya's Deep Shrink: during the first steps (start to end percent) the UNet works on features shrunk by
    downscale_factor after input block block_number, so large images keep a small image's composition."""
    from diffusion.deep_shrink import DeepShrink

    shrink, grow = partial(upscale, method=downscale_method), partial(upscale, method=upscale_method)
    patch = DeepShrink(block_number, downscale_factor, start_percent, end_percent, downscale_after_skip, shrink, grow)
    return _unet_patch(model, patch)


@node(category="_for_testing", outputs=["MODEL"], display_name="Differential Diffusion", experimental=True)
def DifferentialDiffusion(
    model: Any = MODEL, strength: float = Float(1.0, min=0.0, max=1.0, step=0.01, optional=True)
) -> Any:
    """Differential Diffusion: an inpainting mask's values become per-pixel change strengths (soft masks repaint
    gradually: strong pixels from the first step, weak ones only at the end)."""
    from diffusion.differential import DifferentialMask

    if model is None:
        raise ValueError("model: the checkpoint has no diffusion model")
    return model.with_denoise_mask(DifferentialMask(strength))


SIGMA = {"min": 0.0, "max": 1000.0, "step": 0.001, "round": False}
# sampling -> (prediction, sigma_data)
CONTINUOUS_EDM = {
    "v_prediction": ("v", 1.0),
    "edm": ("edm", 0.5),
    "edm_playground_v2.5": ("edm", 0.5),  # and Playground's per-channel latent normalisation
    "eps": ("eps", 1.0),
}
CONTINUOUS_EDM_TYPES = ("v_prediction", "edm", "edm_playground_v2.5", "eps", "cosmos_rflow")
UNSUPPORTED_EDM = {"cosmos_rflow": "it is for Cosmos models, which Loom does not load"}


def _continuous(model: Any, prediction: str, sigma_data: float, sigma_min: float, sigma_max: float, time: str) -> Any:
    from dataclasses import replace

    from diffusion.continuous import ContinuousSchedule

    if model is None:
        raise ValueError("model: the checkpoint has no diffusion model")
    try:
        schedule = ContinuousSchedule.between(sigma_min, sigma_max, time)
    except ValueError as exc:
        raise ValueError(f"sigma_min: {exc}") from exc
    return replace(model, prediction=prediction, sigma_data=sigma_data, schedule=schedule)


@node(category="advanced/model", outputs=["MODEL"])
def ModelSamplingContinuousEDM(
    model: Any = MODEL,
    sampling: str = Combo(CONTINUOUS_EDM_TYPES),
    sigma_max: float = Float(120.0, **SIGMA),
    sigma_min: float = Float(0.002, **SIGMA),
) -> Any:
    """Sample a model trained on continuous noise levels (EDM-style: CosXL, Playground v2.5): sigma_min to
    sigma_max, the time input ln(sigma)/4, and what the model predicts (edm: EDM's scalings with sigma_data 0.5;
    edm_playground_v2.5: those in Playground v2.5's per-channel normalised latent space)."""
    if sampling in UNSUPPORTED_EDM:
        raise ValueError(f"sampling: {sampling!r} is not supported: {UNSUPPORTED_EDM[sampling]}")
    if sampling not in CONTINUOUS_EDM:
        raise ValueError(f"sampling: expected one of {', '.join(CONTINUOUS_EDM_TYPES)}, got {sampling!r}")
    prediction, sigma_data = CONTINUOUS_EDM[sampling]
    patched = _continuous(model, prediction, sigma_data, sigma_min, sigma_max, "edm")
    if sampling == "edm_playground_v2.5":
        from dataclasses import replace

        from diffusion.detect import family_defaults
        from diffusion.latent_format import playground_v25

        vae_scale = float(family_defaults(model.family)["vae_scaling_factor"])
        patched = replace(patched, latent_format=playground_v25(vae_scale))
    return patched


@node(category="advanced/model", outputs=["MODEL"])
def ModelSamplingContinuousV(
    model: Any = MODEL,
    sampling: str = Combo(("v_prediction",)),
    sigma_max: float = Float(500.0, **SIGMA),
    sigma_min: float = Float(0.03, **SIGMA),
) -> Any:
    """Sample a v-prediction model trained on continuous noise levels from sigma_min to sigma_max, its time input
    the angle 2/pi * atan(sigma)."""
    if sampling != "v_prediction":
        raise ValueError(f"sampling: expected 'v_prediction', got {sampling!r}")
    return _continuous(model, "v", 1.0, sigma_min, sigma_max, "v")
