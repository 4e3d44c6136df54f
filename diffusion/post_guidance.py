"""Post-guidance model options: functions of one step's estimates (diffusion.model.GuidanceStep) returning the
x0 estimate the sampler steps with. Each is a small dataclass so a patched model stays picklable and comparable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from diffusion.model import GuidanceStep, UnetPatch


def _per_item(t: torch.Tensor) -> torch.Tensor:
    """[B, 1, 1, 1]-shaped sigma for broadcasting over a latent."""
    return t.reshape(-1, *([1] * 3))


@dataclass(frozen=True)
class RescaleCFG:
    """Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed", sec. 3.4: rescale the
    guided v-prediction to the standard deviation of the positive one (fixing over-exposure at high cfg), mixed
    with the plain guided one by `multiplier`. Works in v space whatever the model predicts."""

    multiplier: float

    def __call__(self, step: GuidanceStep) -> torch.Tensor:
        if step.uncond is None:
            return step.guided
        s = _per_item(step.sigma).to(step.x)
        x = step.x / (s * s + 1)  # the latent in the variance-preserving scale
        norm = (s * s + 1) ** 0.5 / s

        def v(x0: torch.Tensor) -> torch.Tensor:
            return (x - x0) * norm

        v_cond, v_uncond = v(step.cond), v(step.uncond)
        v_cfg = v_uncond + step.scale * (v_cond - v_uncond)
        dims = tuple(range(1, v_cfg.ndim))
        rescaled = v_cfg * (v_cond.std(dim=dims, keepdim=True) / v_cfg.std(dim=dims, keepdim=True))
        v_final = self.multiplier * rescaled + (1 - self.multiplier) * v_cfg
        return x - v_final / norm


@dataclass(frozen=True)
class CFGZeroStar:
    """Fan et al. 2025, "CFG-Zero*": scale the unconditional estimate by the least-squares factor that best
    matches it to the conditional one (per item, on the noise predictions) before guiding."""

    def __call__(self, step: GuidanceStep) -> torch.Tensor:
        if step.uncond is None:
            return step.guided
        cond_eps, uncond_eps = (step.x - step.cond).flatten(1), (step.x - step.uncond).flatten(1)
        alpha = (cond_eps * uncond_eps).sum(1) / (uncond_eps.pow(2).sum(1) + 1e-8)
        alpha = _per_item(alpha).to(step.x)
        # guided = uncond*alpha + s (cond - uncond*alpha), written from the estimate guidance already made
        return step.guided + step.uncond * (alpha - 1) + step.scale * step.uncond * (1 - alpha)


@dataclass(frozen=True)
class CFGNorm:
    """Keep the guided estimate's per-pixel channel norm at most the positive estimate's (times `strength`)."""

    strength: float

    def __call__(self, step: GuidanceStep) -> torch.Tensor:
        cond_norm = step.cond.norm(dim=1, keepdim=True)
        guided_norm = step.guided.norm(dim=1, keepdim=True)
        return step.guided * (cond_norm / (guided_norm + 1e-8)).clamp(0.0, 1.0) * self.strength


@dataclass(frozen=True)
class EpsilonScaling:
    """Ning et al. 2023, "Elucidating the Exposure Bias in Diffusion Models": divide the predicted noise by a
    factor slightly above 1, which counters the drift between training and sampling inputs."""

    scaling_factor: float

    def __call__(self, step: GuidanceStep) -> torch.Tensor:
        return step.x - (step.x - step.guided) / self.scaling_factor


@dataclass(eq=False)
class AdaptiveProjectedGuidance:
    """Sadat et al. 2024, "Eliminating Oversaturation and Artifacts of High Guidance Scales in Diffusion Models":
    split the guidance direction into its parts parallel and orthogonal to the positive estimate, keep the
    orthogonal one and `eta` of the parallel one, cap its norm at `norm_threshold` and smooth it across steps with
    momentum. With eta 1, no threshold and no momentum it is plain CFG. The momentum restarts with each sampling run
    (a sigma above the previous step's)."""

    eta: float
    norm_threshold: float
    momentum: float
    _average: torch.Tensor | None = field(default=None, repr=False)
    _last_sigma: float = field(default=float("inf"), repr=False)

    def __call__(self, step: GuidanceStep) -> torch.Tensor:
        if step.uncond is None:
            return step.guided
        sigma = float(step.sigma.max())
        if sigma > self._last_sigma:
            self._average = None
        self._last_sigma = sigma
        delta = step.cond - step.uncond
        if self.momentum != 0:
            self._average = delta if self._average is None else delta + self.momentum * self._average
            delta = self._average
        dims = tuple(range(1, delta.ndim))
        if self.norm_threshold > 0:
            norm = _per_item(delta.flatten(1).norm(dim=1))
            delta = delta * (self.norm_threshold / norm.clamp_min(1e-12)).clamp(max=1.0)
        unit = torch.nn.functional.normalize(step.cond.double().flatten(1), dim=1).view(step.cond.shape)
        parallel = (delta.double() * unit).sum(dim=dims, keepdim=True) * unit
        orthogonal = delta.double() - parallel
        update = (orthogonal + self.eta * parallel).to(delta.dtype)
        return step.cond + (step.scale - 1) * update


@dataclass(frozen=True)
class OperationOnGuidance:
    """A latent operation applied to the guidance direction (cond - uncond) before it is scaled; without a
    negative, to the positive estimate itself."""

    operation: Callable[..., torch.Tensor]

    def __call__(self, step: GuidanceStep) -> torch.Tensor:
        if step.uncond is None:
            return self.operation(latent=step.guided)
        return step.uncond + step.scale * self.operation(latent=step.cond - step.uncond)


@dataclass(frozen=True)
class SkipLayerGuidance:
    """Skip-layer guidance (Stability AI's for SD3, after Perturbed-Attention Guidance, Ahn et al. 2024): while
    sigma is within [sigma_end, sigma_start], predict the positive again with some transformer blocks skipped and
    push the guided estimate away from that weaker prediction by `scale`; `rescale` > 0 then pulls the result's
    spread toward the positive estimate's."""

    skip: UnetPatch
    scale: float
    sigma_start: float
    sigma_end: float
    rescale: float = 0.0

    def __call__(self, step: GuidanceStep) -> torch.Tensor:
        sigma = float(step.sigma[0])
        if self.scale <= 0 or step.predict is None or not self.sigma_end <= sigma <= self.sigma_start:
            return step.guided
        weaker = step.predict(step.x, 0, self.skip)
        if weaker is None:
            return step.guided
        guided = step.guided + (step.cond - weaker) * self.scale
        if self.rescale != 0:
            factor = step.cond.std() / guided.std()
            guided = guided * (self.rescale * factor + (1 - self.rescale))
        return guided
