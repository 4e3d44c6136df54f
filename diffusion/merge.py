"""Model merging by parameter name: weighted sums of two modules of the same architecture.

Each merged tensor is computed in float32 and stored in the first module's dtype. The result is a shared copy of
the first module (lora.shared_copy): tensors whose weight pair is (1, 0) stay the very tensors of the first module,
so neither input changes and a merge that leaves a block alone costs no memory for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from diffusion.lora import shared_copy

Weights = Callable[[str], tuple[float, float]]  # parameter name -> (a, b): merged = a * first + b * second


@dataclass
class Merged:
    module: nn.Module
    mismatched: list[str] = field(default_factory=list)  # parameters the second module lacks or shapes differently


def merge_modules(first: nn.Module, second: nn.Module, weights: Weights, skip: tuple[str, ...] = ()) -> Merged:
    """`a * first + b * second` parameter by parameter; parameters ending with a `skip` suffix, or missing from
    `second` (or of another shape there), keep the first module's values and are listed as mismatched."""
    clone = shared_copy(first)
    others = dict(second.named_parameters())
    result = Merged(clone)
    with torch.no_grad():
        for name, param in list(clone.named_parameters()):
            if name.endswith(skip):
                continue
            other = others.get(name)
            if other is None or other.shape != param.shape:
                result.mismatched.append(name)
                continue
            a, b = weights(name)
            if a == 1.0 and b == 0.0:
                continue
            value = param.detach().float() * a + other.detach().to(param.device, torch.float32) * b
            owner_name, _, leaf = name.rpartition(".")
            owner = clone.get_submodule(owner_name) if owner_name else clone
            setattr(owner, leaf, nn.Parameter(value.to(param.dtype), requires_grad=False))
    return result


def by_prefix(names: dict[str, str], ratios: dict[str, float], default: float) -> Weights:
    """Weights `(r, 1 - r)` where r is the ratio of the longest prefix in `ratios` that the parameter's LDM name
    (`names`: parameter -> LDM name) starts with, else `default`. Ratio 1 keeps the first model."""

    ordered = sorted(ratios, key=len, reverse=True)

    def weights(name: str) -> tuple[float, float]:
        ldm = names.get(name, name)
        ratio = next((ratios[p] for p in ordered if ldm.startswith(p)), default)
        return ratio, 1.0 - ratio

    return weights
