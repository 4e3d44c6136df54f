"""Noise sources for the samplers: `noise(sigma, sigma_next)` gives unit Gaussian noise for one step's interval.

Ancestral samplers take fresh draws from a seeded CPU generator (`GaussianNoise`), so their noise depends on how
many draws came before. SDE samplers take the increments of one Brownian motion W over sigma (`BrownianTreeNoise`):
a step's noise is then a function of its interval only, so changing the step count keeps the image close, and, as
the tree is torchsde's with the job's seed as entropy, a seed gives the images of other tools built on torchsde.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

NoiseSource = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# torchsde's BrownianTree settings, which the ecosystem's samplers use: the same seed then gives the same path.
# The tolerance is 10**-digits; torchsde rounds the tree's ends (and every query) to that many digits.
_TREE_DIGITS = 6
_TREE_POOL = 24


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator for a job's seed (folded into 64 bits), so noise does not depend on the device."""
    return torch.Generator("cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)


class GaussianNoise:
    """Fresh N(0, 1) noise in `shape` on each call, whatever the interval, from one generator seeded once."""

    def __init__(self, shape: Sequence[int], seed: int, device: torch.device | str = "cpu") -> None:
        self.shape, self.device = tuple(shape), device
        self.generator = seeded_generator(seed)

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        return torch.randn(self.shape, generator=self.generator, dtype=torch.float32).to(self.device)


class BrownianTreeNoise:
    """(W(sigma_next) - W(sigma)) / sqrt(|sigma_next - sigma|) for a Brownian motion W on [sigma_min, sigma_max].

    Each batch item has its own tree seeded with `seeds[i]` (the job's seed + the item's index), so an item gets
    the noise of a single run with that seed. The trees live on the CPU by default, so the path does not depend on
    the device; they are binary trees over the time range (torchsde's `halfway_tree`), so the path depends on the
    seed alone, not on which intervals were asked for before (it does depend on the span, as in other tools)."""

    def __init__(
        self,
        x: torch.Tensor,
        sigma_min: float,
        sigma_max: float,
        seeds: Sequence[int],
        tree_device: torch.device | str = "cpu",
    ) -> None:
        import torchsde

        if len(seeds) != x.shape[0]:
            raise ValueError(f"{len(seeds)} seeds for a batch of {x.shape[0]}")
        self.lo, self.hi = sorted((round(float(sigma_min), _TREE_DIGITS), round(float(sigma_max), _TREE_DIGITS)))
        self.device = x.device
        self.shape, self.dtype = tuple(x.shape[1:]), x.dtype
        self.trees = [
            torchsde.BrownianInterval(
                t0=self.lo,
                t1=self.hi,
                size=self.shape,
                dtype=self.dtype,
                device=tree_device,
                entropy=int(seed),
                tol=10.0**-_TREE_DIGITS,
                pool_size=_TREE_POOL,
                halfway_tree=True,
            )
            for seed in seeds
        ]

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        t, t_next = float(sigma), float(sigma_next)
        if t == t_next:  # an empty interval has no increment (and nothing to normalise it by)
            return torch.zeros(len(self.trees), *self.shape, dtype=self.dtype, device=self.device)
        # Sigmas at the ends fall just outside the rounded ends; torchsde would clamp them too, with a warning.
        start, end = (min(max(v, self.lo), self.hi) for v in sorted((t, t_next)))
        sign = 1.0 if t_next > t else -1.0
        w = torch.stack([tree(start, end) for tree in self.trees])
        return (w * (sign / abs(t_next - t) ** 0.5)).to(self.device)

    @classmethod
    def for_sigmas(
        cls,
        x: torch.Tensor,
        sigmas: torch.Tensor,
        seed: int,
        batch_index: Sequence[int] | None = None,
        tree_device: torch.device | str = "cpu",
    ) -> BrownianTreeNoise:
        """Trees spanning the schedule's nonzero sigmas (as other tools do, so the paths agree); item i is seeded
        seed + its index in the job's batch (`batch_index`, for a latent taken from a bigger batch). The trees
        live on `tree_device`: the CPU makes the path independent of the device, the model's device (the `_gpu`
        samplers) saves the copies."""
        positive = sigmas[sigmas > 0]
        lo = float(positive.min()) if len(positive) else 0.0
        indices = range(x.shape[0]) if batch_index is None else batch_index
        return cls(x, lo, float(sigmas.max()), [int(seed) + int(i) for i in indices], tree_device)
