"""How the x0 estimates of several conditioning sets combine into the one a sampler steps with.

Each rule takes the estimates in its sets' order (None for a set it did not need this step) and returns the guided
estimate and the unguided one CFG++ samplers re-noise with. `Guider` is the GUIDER socket value: a model, its
named conditioning sets and a rule; the sampler nodes evaluate all sets of a step in one batched model call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

Estimates = Sequence[torch.Tensor | None]


class Rule(Protocol):
    """`scale` is the guidance scale the model's post-guidance functions (RescaleCFG, ...) are told."""

    @property
    def scale(self) -> float: ...

    def needs(self, index: int, keep_uncond: bool) -> bool:
        """Whether set `index` (> 0) must be evaluated this run; `keep_uncond` asks for the unguided estimate."""
        ...

    def __call__(self, estimates: Estimates) -> tuple[torch.Tensor, torch.Tensor | None]: ...


@dataclass(frozen=True)
class CFG:
    """Classifier-free guidance (Ho & Salimans 2022) over [positive, negative]: u + scale (c - u). At scale 1
    the negative is skipped (the result is c) unless a CFG++ sampler asks for it. One set alone is c."""

    scale: float = 1.0

    def needs(self, index: int, keep_uncond: bool) -> bool:
        return self.scale != 1.0 or keep_uncond

    def __call__(self, estimates: Estimates) -> tuple[torch.Tensor, torch.Tensor | None]:
        cond = estimates[0]
        assert cond is not None
        uncond = estimates[1] if len(estimates) > 1 else None
        if uncond is None:
            return cond, None
        return uncond + (cond - uncond) * self.scale, uncond


@dataclass(frozen=True)
class DualCFG:
    """Two prompts and a negative, [cond1, cond2, negative]. "regular": n + s2 (c2 - n) + s1 (c1 - c2);
    "nested": guide cond1 against cond2 first, p = c2 + s1 (c1 - c2), then n + s2 (p - n)."""

    cfg_conds: float = 8.0
    cfg_cond2_negative: float = 8.0
    nested: bool = False

    @property
    def scale(self) -> float:
        return self.cfg_conds

    def needs(self, index: int, keep_uncond: bool) -> bool:
        if self.nested or keep_uncond:
            return True
        if index == 2:
            return self.cfg_cond2_negative != 1.0
        return self.cfg_cond2_negative != 1.0 or self.cfg_conds != 1.0

    def __call__(self, estimates: Estimates) -> tuple[torch.Tensor, torch.Tensor | None]:
        c1, c2, neg = estimates
        assert c1 is not None
        if c2 is None:
            return c1, None
        if self.nested:
            assert neg is not None
            inner = c2 + self.cfg_conds * (c1 - c2)
            return neg + self.cfg_cond2_negative * (inner - neg), neg
        outer = c2 if neg is None else neg + self.cfg_cond2_negative * (c2 - neg)
        return outer + (c1 - c2) * self.cfg_conds, neg if neg is not None else c2


@dataclass(frozen=True)
class PerpNeg:
    """Perp-Neg (Armandpour et al. 2023) over [positive, negative, empty]: guide by the positive direction
    minus only the part of the negative direction perpendicular to it, both taken from the empty prompt."""

    cfg: float = 8.0
    neg_scale: float = 1.0

    @property
    def scale(self) -> float:
        return self.cfg

    def needs(self, index: int, keep_uncond: bool) -> bool:
        if keep_uncond:
            return True
        if index == 1:
            return self.neg_scale != 0.0
        return self.neg_scale != 0.0 or self.cfg != 1.0

    def __call__(self, estimates: Estimates) -> tuple[torch.Tensor, torch.Tensor | None]:
        pos, neg, empty = estimates
        assert pos is not None
        if empty is None:
            return pos, None
        along = pos - empty
        result = empty + self.cfg * along
        if neg is not None:
            away = neg - empty
            # 0/0 when the positive equals the empty prompt: no direction to be perpendicular to, so plain guidance
            projection = torch.nan_to_num((away * along).sum() / along.norm() ** 2, nan=0.0, posinf=0.0, neginf=0.0)
            perpendicular = away - projection * along
            result = result - self.cfg * self.neg_scale * perpendicular
        return result, neg if neg is not None else empty


@dataclass(frozen=True)
class Guider:
    """A GUIDER socket value. `sets` are (name, conditioning) in the rule's order; the first must not be empty."""

    model: Any
    sets: tuple[tuple[str, Any], ...]
    rule: Rule
