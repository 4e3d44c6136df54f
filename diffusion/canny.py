"""Canny edge detection in plain torch ops (no OpenCV or kornia dependency), batched and on any device.

Gaussian blur, Sobel gradients, non-maximum suppression along the gradient direction, then hysteresis: weak edges
survive only when connected to strong ones. Thresholds apply to the gradient magnitude of a 0..1 grey image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _gaussian(sigma: float, size: int = 5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    return (k[:, None] * k[None, :])[None, None]


def canny(images: torch.Tensor, low: float, high: float, sigma: float = 1.0) -> torch.Tensor:
    """Edges of IMAGE [B, H, W, C] (0..1) as a [B, H, W] float mask of 0s and 1s."""
    if low > high:
        low, high = high, low
    rgb = images[..., :3].float()
    grey = (rgb * rgb.new_tensor([0.299, 0.587, 0.114])).sum(-1) if rgb.shape[-1] == 3 else rgb[..., 0]
    x = grey[:, None]
    x = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), _gaussian(sigma).to(x))
    sobel = x.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, sobel[None, None])
    gy = F.conv2d(padded, sobel.t()[None, None])
    magnitude = torch.sqrt(gx**2 + gy**2 + 1e-12)
    # Quantise the gradient direction to 0, 45, 90 or 135 degrees and compare with the two neighbours along it.
    angle = torch.atan2(gy, gx) * (180.0 / math.pi) % 180.0
    sector = (((angle + 22.5) // 45) % 4).long()
    m = F.pad(magnitude, (1, 1, 1, 1))
    h, w = magnitude.shape[-2:]

    def shifted(dy: int, dx: int) -> torch.Tensor:
        return m[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    offsets = ((0, 1), (1, 1), (1, 0), (1, -1))
    keep = torch.zeros_like(magnitude, dtype=torch.bool)
    for i, (dy, dx) in enumerate(offsets):
        peak = (magnitude > shifted(dy, dx)) & (magnitude >= shifted(-dy, -dx))  # ties keep one pixel
        keep |= (sector == i) & peak
    thin = magnitude * keep
    weak = thin >= low
    edges = thin >= high
    while True:
        grown = weak & (F.max_pool2d(edges.float(), 3, stride=1, padding=1) > 0)
        if torch.equal(grown, edges):
            break
        edges = grown
    return edges[:, 0].float()
