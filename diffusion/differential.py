"""Differential Diffusion (Levin & Fried 2023, "Differential Diffusion: Giving Each Pixel Its Strength"): a soft
inpainting mask read as a per-pixel change strength. At each step only the pixels whose mask value reaches a
threshold are repainted; the threshold falls linearly in timestep from 1 at the run's first sigma to 0 at its last
(or the model's lowest), so strong pixels change from the start and weak ones join late.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffusion.model import DiffusionModel


def step_threshold(sigma: torch.Tensor, sigmas: torch.Tensor, model: DiffusionModel) -> torch.Tensor:
    """The mask value a pixel needs to be repainted at `sigma` ([B]; the first item decides) of a run over
    `sigmas`: (t - t_last) / (t_first - t_last) in the model's timesteps."""
    last = torch.clamp(sigmas[-1:].float(), min=model.schedule.sigma_min)
    first, current = sigmas[:1].float(), sigma[:1].float()
    t_first, t_last, t_now = (model.timestep(s.cpu()) for s in (first, last, current))
    span = t_first - t_last
    if float(span) == 0:
        return torch.zeros(1)
    return (t_now - t_last) / span


@dataclass(frozen=True)
class DifferentialMask:
    """The per-step mask (diffusion.model.DenoiseMask): 1 where the mask reaches the step's threshold, else 0;
    with `strength` below 1, blended with the soft mask by that much."""

    strength: float = 1.0

    def __call__(
        self, mask: torch.Tensor, sigma: torch.Tensor, sigmas: torch.Tensor, model: DiffusionModel
    ) -> torch.Tensor:
        threshold = step_threshold(sigma, sigmas, model).to(mask.device, mask.dtype)
        binary = (mask >= threshold).to(mask.dtype)
        if 0 < self.strength < 1:
            return self.strength * binary + (1 - self.strength) * mask
        return binary
