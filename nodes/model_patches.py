"""Model options. How each sampling step's estimate is guided: RescaleCFG, CFGZeroStar, CFGNorm, Epsilon Scaling,
Adaptive Projected Guidance, a latent operation on the guidance direction (DiffusionModel.with_post_guidance); and
FreeU inside the UNet (DiffusionModel.with_unet_patch); and what the model predicts (ModelSamplingDiscrete). Each
returns a patched copy; the input model is unchanged.
"""

from __future__ import annotations

from typing import Any

from engine.native import Boolean, Combo, Float, Out, Socket, node

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
    its tensors do not reveal, and optionally rescale its schedule to zero terminal SNR (for models trained so)."""
    from dataclasses import replace

    if model is None:
        raise ValueError("model: the checkpoint has no diffusion model")
    if sampling not in SAMPLING_PREDICTIONS:
        supported = ", ".join(SAMPLING_PREDICTIONS)
        raise ValueError(f"sampling: Loom's models do not support {sampling!r} yet; choose one of {supported}")
    schedule = model.schedule.zero_terminal_snr() if zsnr else model.schedule
    return replace(model, prediction=SAMPLING_PREDICTIONS[sampling], schedule=schedule)
