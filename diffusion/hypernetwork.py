"""Hypernetworks (the A1111 format, models/hypernetworks): per-width pairs of small MLPs that rewrite the input of
each attention layer's key and value projections, `x + strength * mlp(x)`, for every attention whose input width
has a pair (the text context in cross-attention, the image features in self-attention).

A file is a torch pickle `{width: [key_state, value_state], "activation_func": ..., ...}` whose MLP states are
`linear.<i>.weight/bias` in sequence order: 2-D weights are linear layers (each followed by the activation,
except the last unless `activate_output`), 1-D ones layer norms. The same tensors flattened into safetensors
(`<width>.<0|1>.linear.<i>.weight`, options in the metadata) load too. Dropout is a training-time layer and is
left out.

The patch is a `UnetPatch`: forward pre-hooks on the projections, attached for one UNet call, so the cached base
module is never changed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "linear": nn.Identity,
    "relu": nn.ReLU,
    "leakyrelu": nn.LeakyReLU,
    "elu": nn.ELU,
    "swish": nn.Hardswish,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softsign": nn.Softsign,
    "mish": nn.Mish,
}
_LAYER = re.compile(r"^linear\.(\d+)\.(weight|bias)$")
_FLAT = re.compile(r"^(\d+)\.([01])\.(.+)$")


class HypernetworkError(ValueError):
    """A file that is not a hypernetwork Loom can run."""


@dataclass(frozen=True)
class Options:
    activation: str = "linear"
    layer_norm: bool = False
    activate_output: bool = False


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _mlp(state: Mapping[str, torch.Tensor], options: Options, where: str) -> nn.Sequential:
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        match = _LAYER.match(key)
        if match is None:
            raise HypernetworkError(f"{where}: unexpected tensor {key!r} (expected linear.<i>.weight/bias)")
        layers.setdefault(int(match.group(1)), {})[match.group(2)] = tensor
    linears = [i for i, p in layers.items() if p["weight"].ndim == 2]
    if not linears:
        raise HypernetworkError(f"{where}: no linear layers")
    modules: list[nn.Module] = []
    for index in sorted(layers):
        params = layers[index]
        if "bias" not in params:
            raise HypernetworkError(f"{where}: layer {index} has no bias")
        weight = params["weight"].float()
        if weight.ndim == 2:
            linear = nn.Linear(weight.shape[1], weight.shape[0])
            linear.load_state_dict({"weight": weight, "bias": params["bias"].float()})
            modules.append(linear)
            if index != max(linears) or options.activate_output:
                modules.append(ACTIVATIONS[options.activation]())
        else:
            norm = nn.LayerNorm(weight.shape[0])
            norm.load_state_dict({"weight": weight, "bias": params["bias"].float()})
            modules.append(norm)
    return nn.Sequential(*modules).eval().requires_grad_(False)


def build_hypernetwork(
    pairs: Mapping[int, tuple[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]]], options: Options
) -> dict[int, tuple[nn.Sequential, nn.Sequential]]:
    """width -> (key MLP, value MLP)."""
    if options.activation not in ACTIVATIONS:
        raise HypernetworkError(f"activation {options.activation!r} is not one of {', '.join(ACTIVATIONS)}")
    if not pairs:
        raise HypernetworkError("no MLP pairs keyed by a width")
    return {
        width: (_mlp(k, options, f"width {width} key"), _mlp(v, options, f"width {width} value"))
        for width, (k, v) in pairs.items()
    }


def _from_pickle(path: Path) -> dict[int, tuple[nn.Sequential, nn.Sequential]]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise HypernetworkError(f"{path.name}: not a readable hypernetwork file ({exc})") from exc
    if not isinstance(data, dict):
        raise HypernetworkError(f"{path.name}: not a hypernetwork (a {type(data).__name__}, not a dict)")
    options = Options(
        str(data.get("activation_func", "linear")),
        _bool(data.get("is_layer_norm", False)),
        _bool(data.get("activate_output", False)),
    )
    pairs = {}
    for key, value in data.items():
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise HypernetworkError(f"{path.name}: width {key} does not hold a [key, value] pair of MLPs")
            pairs[int(key)] = (value[0], value[1])
    return build_hypernetwork(pairs, options)


def _from_safetensors(path: Path) -> dict[int, tuple[nn.Sequential, nn.Sequential]]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    options = Options(
        meta.get("activation_func", "linear"),
        _bool(meta.get("is_layer_norm", False)),
        _bool(meta.get("activate_output", False)),
    )
    halves: dict[int, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = {}
    for key, tensor in tensors.items():
        match = _FLAT.match(key)
        if match is None:
            raise HypernetworkError(f"{path.name}: unexpected tensor {key!r} (expected <width>.<0|1>.linear.<i>.*)")
        halves.setdefault(int(match.group(1)), ({}, {}))[int(match.group(2))][match.group(3)] = tensor
    return build_hypernetwork(halves, options)


def load_hypernetwork(path: Path) -> dict[int, tuple[nn.Sequential, nn.Sequential]]:
    """The MLP pairs of a hypernetwork file (.pt/.pth/.ckpt pickle, or .safetensors)."""
    path = Path(path)
    return _from_safetensors(path) if path.suffix.lower() == ".safetensors" else _from_pickle(path)


@dataclass(frozen=True, eq=False)
class HypernetworkPatch:
    """A MODEL option: the hypernetwork's MLPs on the key/value projection inputs, scaled by `strength`."""

    nets: Mapping[int, tuple[nn.Sequential, nn.Sequential]]
    strength: float
    _placed: dict[tuple[Any, ...], dict[int, tuple[nn.Module, nn.Module]]] = field(default_factory=dict, repr=False)

    def _on(self, device: torch.device, dtype: torch.dtype) -> dict[int, tuple[nn.Module, nn.Module]]:
        """The MLPs on `device` in `dtype`, converted once per pair."""
        key = (device, dtype)
        if key not in self._placed:
            self._placed[key] = {
                w: (copy.deepcopy(k).to(device, dtype), copy.deepcopy(v).to(device, dtype))
                for w, (k, v) in self.nets.items()
            }
        return self._placed[key]

    def _hook(self, which: int) -> Any:
        def hook(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            x, *rest = args
            nets = self._on(x.device, x.dtype)
            pair = nets.get(int(x.shape[-1]))
            if pair is None:
                return None
            return (x + pair[which](x) * self.strength, *rest)

        return hook

    def attach(self, unet: nn.Module) -> list[RemovableHandle]:
        handles = []
        for module in unet.modules():
            to_k, to_v = getattr(module, "to_k", None), getattr(module, "to_v", None)
            if isinstance(to_k, nn.Module) and isinstance(to_v, nn.Module):
                handles.append(to_k.register_forward_pre_hook(self._hook(0)))
                handles.append(to_v.register_forward_pre_hook(self._hook(1)))
        return handles
