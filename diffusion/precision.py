"""Weights stored in one dtype, computed in another: each layer casts its weights (and its input) to the compute
dtype as it runs, so a CPU computing in fp32 keeps a checkpoint's fp16/bf16 weights as they are in the file
(half the memory of an fp32 copy, and no cast of the whole model at load time)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Cast:
    """Mixin for the layer classes below; `compute_dtype` is set per instance by `cast_per_layer`."""

    compute_dtype: torch.dtype

    def _w(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else tensor.to(self.compute_dtype)


class CastLinear(_Cast, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(self.compute_dtype), self._w(self.weight), self._w(self.bias))


class CastConv2d(_Cast, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x.to(self.compute_dtype), self._w(self.weight), self._w(self.bias))


class CastConv1d(_Cast, nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x.to(self.compute_dtype), self._w(self.weight), self._w(self.bias))


class CastGroupNorm(_Cast, nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.compute_dtype)
        return F.group_norm(x, self.num_groups, self._w(self.weight), self._w(self.bias), self.eps)


class CastLayerNorm(_Cast, nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.compute_dtype)
        return F.layer_norm(x, self.normalized_shape, self._w(self.weight), self._w(self.bias), self.eps)


class CastEmbedding(_Cast, nn.Embedding):
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(ids).to(self.compute_dtype)


CAST_CLASSES: dict[type[nn.Module], type[nn.Module]] = {
    nn.Linear: CastLinear,
    nn.Conv2d: CastConv2d,
    nn.Conv1d: CastConv1d,
    nn.GroupNorm: CastGroupNorm,
    nn.LayerNorm: CastLayerNorm,
    nn.Embedding: CastEmbedding,
}


def cast_per_layer(module: nn.Module, compute_dtype: torch.dtype) -> nn.Module:
    """Make every layer of `module` compute in `compute_dtype` whatever dtype its weights are stored in.

    Layers of other kinds that hold floating-point tensors of their own are cast to the compute dtype once, so
    nothing runs in a storage dtype by accident."""
    for sub in module.modules():
        cast = CAST_CLASSES.get(type(sub))
        if cast is not None:
            sub.__class__ = cast
            sub.compute_dtype = compute_dtype  # type: ignore[attr-defined]
            continue
        if isinstance(sub, _Cast):
            sub.compute_dtype = compute_dtype
            continue
        for name, param in list(sub.named_parameters(recurse=False)):
            if param.is_floating_point() and param.dtype != compute_dtype:
                setattr(sub, name, nn.Parameter(param.data.to(compute_dtype), requires_grad=False))
        for name, buf in list(sub.named_buffers(recurse=False)):
            if buf.is_floating_point() and buf.dtype != compute_dtype:
                sub.register_buffer(name, buf.to(compute_dtype))
    return module


def storage_dtype(file_dtype: torch.dtype, compute_dtype: torch.dtype, keep_file_dtype: bool) -> torch.dtype:
    """The dtype weights are kept in: the file's own 16-bit dtype when computing in fp32 with `keep_file_dtype`
    (layers then cast as they run), else the compute dtype."""
    if keep_file_dtype and compute_dtype == torch.float32 and file_dtype in (torch.float16, torch.bfloat16):
        return file_dtype
    return compute_dtype


def fastest_memory_format(unet: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Channels-last weights for a U-Net computing in bf16 on a CPU: oneDNN's bf16 convolutions (AMX, AVX512-BF16)
    run fastest in that layout (bench/model_layer.py, SD 1.5 at 256x256 on 2 cores: 0.80 s a step against 1.17 s,
    0.47x fp32's 1.72 s). fp32 on a CPU got slower in it (2.64 s) and GPUs choose their own layouts, so those keep
    the default one."""
    if device.type == "cpu" and dtype == torch.bfloat16:
        unet.to(memory_format=torch.channels_last)
    return unet

