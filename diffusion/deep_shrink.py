"""Kohya's Deep Shrink ("PatchModelAddDownscale"): during the early, composition-forming steps, shrink the UNet's
features after one encoder block and grow them back to each skip connection's size in the decoder, so a model
composes a large image as it would a small one (no repeated subjects), then details it at full size.

Blocks are numbered as in the original (LDM) UNet's `input_blocks`: 0 is the input convolution, then each
resolution level's layers (resnet, with its attention if any) and its downsampler. The patch hooks the diffusers
modules for one call, as every UNet patch does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from diffusion.step import current_step

# (features [B, C, H, W], width, height) -> resized features
Resize = Callable[[torch.Tensor, int, int], torch.Tensor]


def encoder_blocks(unet: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """Per LDM input block from 1 on: (the module whose output is that block's output, the module its output
    flows into next)."""
    outputs: list[nn.Module] = []
    for block in unet.down_blocks:
        attentions = getattr(block, "attentions", None)
        for j, resnet in enumerate(block.resnets):
            outputs.append(attentions[j] if attentions else resnet)
        if block.downsamplers:
            outputs.append(block.downsamplers[0])
    return list(zip(outputs, _next_modules(unet), strict=True))


def _next_modules(unet: nn.Module) -> list[nn.Module]:
    """The module each encoder block's output enters: the next layer, the level's downsampler, the next level's
    first resnet, and finally the middle block."""
    order: list[nn.Module] = []
    for block in unet.down_blocks:
        order.extend(block.resnets)
        if block.downsamplers:
            order.append(block.downsamplers[0])
    return [*order[1:], unet.mid_block]


def _first_tensor(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _with_first(output: Any, tensor: torch.Tensor) -> Any:
    return (tensor, *output[1:]) if isinstance(output, tuple) else tensor


@dataclass(frozen=True)
class DeepShrink:
    """Shrink by `factor` after input block `block` while the step's percent is in [start, end) (0 = the first
    step); `after_skip` keeps the block's own skip connection at full size. `shrink` and `grow` resize."""

    block: int
    factor: float
    start: float
    end: float
    after_skip: bool
    shrink: Resize
    grow: Resize

    def active(self) -> bool:
        step = current_step()
        return step is not None and self.start <= step.percent < self.end

    def attach(self, unet: nn.Module) -> list[RemovableHandle]:
        blocks = encoder_blocks(unet)
        if not 1 <= self.block <= len(blocks):
            return []  # as in the original: a block number the model lacks changes nothing
        output, consumer = blocks[self.block - 1]
        if self.after_skip:
            handles = [consumer.register_forward_pre_hook(self._shrink_input, with_kwargs=True)]
        else:
            handles = [output.register_forward_hook(self._shrink_output)]
        for up in unet.up_blocks:
            handles.extend(self._grow_to_skips(up))
        return handles

    def _resized(self, h: torch.Tensor) -> torch.Tensor:
        width, height = round(h.shape[-1] / self.factor), round(h.shape[-2] / self.factor)
        return self.shrink(h, max(width, 1), max(height, 1))

    def _shrink_input(self, _module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if not self.active():
            return None
        if args:
            return (self._resized(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": self._resized(kwargs["hidden_states"])}

    def _shrink_output(self, _module: nn.Module, _args: tuple, output: Any) -> Any:
        if not self.active():
            return None
        return _with_first(output, self._resized(_first_tensor(output)))

    def _grow_to_skips(self, up: nn.Module) -> list[RemovableHandle]:
        """Before each concatenation with a skip connection, features of another size are resized to it: at the
        block's input, and after each of its layers but the last."""
        skips: list[torch.Tensor] = []

        def fit(h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            if h.shape[-2:] == target.shape[-2:]:
                return h
            return self.grow(h, target.shape[-1], target.shape[-2])

        def enter(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            skips[:] = list(kwargs["res_hidden_states_tuple"])
            return args, {**kwargs, "hidden_states": fit(kwargs["hidden_states"], skips[-1])}

        def after_layer(index: int) -> Callable[[nn.Module, tuple, Any], Any]:
            def hook(_module: nn.Module, _args: tuple, output: Any) -> Any:
                return _with_first(output, fit(_first_tensor(output), skips[-(index + 2)]))

            return hook

        attentions = getattr(up, "attentions", None)
        layers = [attentions[i] if attentions else r for i, r in enumerate(up.resnets)]
        handles = [up.register_forward_pre_hook(enter, with_kwargs=True)]
        handles += [layer.register_forward_hook(after_layer(i)) for i, layer in enumerate(layers[:-1])]
        return handles
