"""`comfy.ops` for node packs: the layer namespaces packs build their own modules from.

`disable_weight_init.Linear` (Conv2d, GroupNorm, ...) is the torch layer without the random initialisation (its
weights are loaded right after); `manual_cast` layers also cast their weights to the input's dtype and device
at each call, so a module stored in one precision runs on inputs of another. `cast_bias_weight` and the
rest exist by name only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compat.surface import complete, resolve

_LAYERS = ("Linear", "Conv1d", "Conv2d", "Conv3d", "GroupNorm", "LayerNorm", "ConvTranspose1d", "ConvTranspose2d")


def _no_init(base: type[nn.Module]) -> type[nn.Module]:
    def reset_parameters(self: nn.Module) -> None:
        return None

    return type(base.__name__, (base,), {"reset_parameters": reset_parameters, "comfy_cast_weights": False})


def _casting(base: type[nn.Module]) -> type[nn.Module]:
    def forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        saved = {}
        for name in ("weight", "bias"):
            param = getattr(self, name, None)
            if isinstance(param, torch.Tensor) and (param.dtype != x.dtype or param.device != x.device):
                saved[name] = param
                setattr(self, name, nn.Parameter(param.to(x.device, x.dtype), requires_grad=False))
        try:
            return base.forward(self, x, *args, **kwargs)
        finally:
            for name, param in saved.items():
                setattr(self, name, param)

    return type(base.__name__, (_no_init(base),), {"forward": forward, "comfy_cast_weights": True})


class disable_weight_init:
    pass


class manual_cast:
    pass


for _layer in _LAYERS:
    setattr(disable_weight_init, _layer, _no_init(getattr(nn, _layer)))
    setattr(manual_cast, _layer, _casting(getattr(nn, _layer)))
disable_weight_init.Embedding = _no_init(nn.Embedding)  # type: ignore[attr-defined]
manual_cast.Embedding = _no_init(nn.Embedding)  # type: ignore[attr-defined]

complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
