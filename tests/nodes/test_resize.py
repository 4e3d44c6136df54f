"""Resize and batch helpers."""

from __future__ import annotations

import pytest
import torch

from nodes.resize import bislerp, center_crop_to_aspect, match_shape, repeat_to_batch, upscale


def test_bislerp_keeps_channel_vector_magnitudes() -> None:
    a = torch.tensor([1.0, 0.0, 0.0, 0.0])
    b = torch.tensor([0.0, 1.0, 0.0, 0.0])
    src = torch.stack([a, b], dim=-1).reshape(1, 4, 1, 2)
    out = bislerp(src, 4, 1)
    assert torch.allclose(out.norm(dim=1), torch.ones(1, 1, 4), atol=1e-5)  # bilinear would dip to 0.707
    assert torch.allclose(bislerp(src, 2, 1), src, atol=1e-6)  # same size: unchanged


def test_center_crop_to_aspect() -> None:
    x = torch.zeros(1, 1, 10, 40)
    assert center_crop_to_aspect(x, 2, 1).shape == (1, 1, 10, 20)
    assert center_crop_to_aspect(x.transpose(-1, -2), 1, 1).shape == (1, 1, 10, 10)


def test_repeat_to_batch_cycles_or_cuts() -> None:
    x = torch.arange(3).reshape(3, 1)
    assert repeat_to_batch(x, 7).flatten().tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert repeat_to_batch(x, 2).flatten().tolist() == [0, 1]


def test_match_shape_and_bad_arguments() -> None:
    target = torch.zeros(2, 4, 8, 8)
    assert match_shape(target, torch.ones(1, 4, 3, 5)).shape == target.shape
    with pytest.raises(ValueError, match="channels differ"):
        match_shape(target, torch.ones(2, 3, 8, 8))
    with pytest.raises(ValueError, match="unknown resize method"):
        upscale(target, 4, 4, "magic")
    with pytest.raises(ValueError, match="at least 1"):
        upscale(target, 0, 4, "bilinear")


def test_half_precision_resizes_on_the_cpu() -> None:
    out = upscale(torch.ones(1, 4, 4, 4, dtype=torch.float16), 8, 8, "bicubic")
    assert out.dtype == torch.float16 and out.shape == (1, 4, 8, 8)
