"""A ControlNet's residuals added inside one UNet call, each where it fits.

diffusers adds them itself (`down_block_additional_residuals`) and fails with a shape error on one that does not
fit, which is what happens while a patch resizes the UNet's features (Deep Shrink shrinks them after an encoder
block during the first steps). The reference engine leaves such a residual out with a warning and applies the rest,
and so does this: the residuals go onto the skip features each decoder block receives and onto the middle block's
output, where diffusers would add them, and one of another spatial size is left out. One that cannot be meant for
this UNet at all (another count, batch or channel width: a ControlNet of another model family) is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from diffusion.step import step_warning

LEFT_OUT = (
    "ControlNet residuals of another size than the UNet's features were left out while a patch resizes those "
    "features (PatchModelAddDownscale); the ControlNet acts where the sizes match"
)


class ControlNetMismatch(ValueError):
    """ControlNet residuals that no resizing explains: the ControlNet was made for another model."""


def _added(feature: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    if residual.shape[:2] != feature.shape[:2]:
        raise ControlNetMismatch(
            f"a ControlNet residual of shape {tuple(residual.shape)} meets UNet features of shape "
            f"{tuple(feature.shape)}: the ControlNet was made for another model"
        )
    if residual.shape[2:] != feature.shape[2:]:
        step_warning(LEFT_OUT)
        return feature
    return feature + residual


@dataclass(frozen=True)
class ControlResiduals:
    """A UNet patch (diffusion.model.UnetPatch) adding `down` (one per skip connection, in the encoder's order)
    and `mid` for one call."""

    down: Sequence[torch.Tensor] = ()
    mid: torch.Tensor | None = None

    def attach(self, unet: nn.Module) -> list[RemovableHandle]:
        counts = [len(up.resnets) for up in unet.up_blocks]
        if self.down and len(self.down) != sum(counts):
            raise ControlNetMismatch(
                f"the ControlNet gives {len(self.down)} residuals where the UNet has {sum(counts)} skip "
                "connections: it was made for another model"
            )
        handles = []
        left = list(self.down)
        for up, count in zip(unet.up_blocks, counts, strict=True) if self.down else ():
            # a decoder block takes the last `count` skip features left, in the encoder's order
            handles.append(up.register_forward_pre_hook(_onto_skips(left[-count:]), with_kwargs=True))
            del left[-count:]
        if self.mid is not None:
            mid = self.mid
            handles.append(unet.mid_block.register_forward_hook(lambda _m, _a, out: _added(out, mid)))
        return handles


def _onto_skips(residuals: Sequence[torch.Tensor]) -> Callable[[nn.Module, tuple, dict], tuple[tuple, dict]]:
    def hook(_module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict]:
        skips = kwargs["res_hidden_states_tuple"]
        added = tuple(_added(s, r) for s, r in zip(skips, residuals, strict=True))
        return args, {**kwargs, "res_hidden_states_tuple": added}

    return hook
