"""Attention patches: UNet patches (diffusion.model.UnetPatch) that change how self-attention layers attend.

Each wraps a layer's diffusers attention processor for one UNet call (`ProcessorSwap`); the wrapper calls the
processor it found (the default one, IP-Adapter's, or another patch's wrapper), so patches compose, and `remove`
puts the found one back, leaving the shared module as it was. The layer's token grid comes from the latent size the
sampler announces for the call (diffusion.step), so these act inside sampling and pass through elsewhere.

- `HyperTile` (tfernd's HyperTile): self-attention within tiles of the token grid at the shallow depths.
- `TokenMerging` (Bolya & Hoffman 2023, "Token Merging for Fast Stable Diffusion"): self-attention at full
  resolution over fewer tokens, merging each of the most redundant tokens into its most similar neighbour.
- `MidBlockIdentity`: the middle block's self-attention as the identity map (each token attends only to itself),
  the perturbation of Perturbed-Attention Guidance.
- `AttentionRecorder`: records how much attention each token of the middle block receives, for Self-Attention
  Guidance's mask.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from diffusion.step import StepInfo, current_step


class ProcessorSwap:
    """An attention layer's processor replaced until `remove` (a diffusion.model.Removable)."""

    def __init__(self, attention: nn.Module, processor: Any) -> None:
        self.attention, self.original = attention, attention.processor
        attention.processor = processor

    def remove(self) -> None:
        self.attention.processor = self.original


def self_attention_layers(unet: nn.Module, prefix: str = "") -> list[nn.Module]:
    """The UNet's self-attention layers (the transformer blocks' `attn1`) whose names start with `prefix`, in
    module order."""
    return [m for name, m in unet.named_modules() if name.endswith(".attn1") and name.startswith(prefix)]


def token_grid(size: tuple[int, int], tokens: int) -> tuple[int, int, int] | None:
    """(rows, columns, depth) of a layer's token grid: the latent's (height, width) halved `depth` times (rounding
    up, as stride-2 convolutions do) to `tokens` positions; None when no depth fits."""
    height, width = size
    for depth in range(12):
        rows, cols = -(-height // 2**depth), -(-width // 2**depth)
        if rows * cols == tokens:
            return rows, cols, depth
        if rows * cols < tokens:
            return None
    return None


def _step_seed(step: StepInfo, layer: int) -> int:
    """A seed for a layer's random choices at a step: the same run makes the same choices."""
    return layer * 1_000_003 + round(step.percent * 1_000_000)


Patch = TypeVar("Patch")


class _Wrapped(Generic[Patch]):
    """A processor around the layer's own (`base`), for one patch: plain self-attention on a [batch, tokens,
    channels] input inside a sampler's call (anywhere, when not `needs_step`) goes through `attend`; anything else
    goes to the layer's processor unchanged."""

    needs_step = True

    def __init__(self, base: Any, layer: int, patch: Patch) -> None:
        self.base, self.layer, self.patch = base, layer, patch

    def __call__(
        self,
        attn: nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        step = current_step()
        plain = encoder_hidden_states is None and attention_mask is None and hidden_states.ndim == 3
        if not plain or (step is None and self.needs_step):
            return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        return self.attend(attn, hidden_states, temb, step)

    def attend(
        self, attn: nn.Module, hidden: torch.Tensor, temb: torch.Tensor | None, step: StepInfo | None
    ) -> torch.Tensor:
        raise NotImplementedError


# -- HyperTile ------------------------------------------------------------------------------------------------


def random_divisor(value: int, smallest: int, options: int, rng: random.Random) -> int:
    """How many tiles to cut `value` rows into: `value // d` for one of the `options` smallest divisors d of
    `value` that are at least `smallest` (capped at `value`), picked at random."""
    smallest = min(smallest, value)
    divisors = [d for d in range(smallest, value + 1) if value % d == 0][:options]
    return value // divisors[rng.randrange(len(divisors))]


@dataclass(frozen=True)
class HyperTile:
    """Self-attention within tiles of about `tile_size` pixels (tile_size / 8 tokens a side) at depths 0 to
    `max_depth` of the UNet (0: full latent resolution); `scale_depth` doubles the tile side per depth. Tile counts
    are picked at random among the `swap_size` largest that divide the grid, differently at each step and layer
    (so seams move), the same way in every run. A tile covering the grid is plain attention."""

    tile_size: int
    swap_size: int
    max_depth: int
    scale_depth: bool

    def attach(self, unet: nn.Module) -> list[ProcessorSwap]:
        return [ProcessorSwap(a, _Tiled(a.processor, i, self)) for i, a in enumerate(self_attention_layers(unet))]

    def tiles(self, rows: int, cols: int, depth: int, rng: random.Random) -> tuple[int, int]:
        """(tile rows, tile columns) for a grid at `depth`."""
        side = max(32, self.tile_size) // 8 * (2**depth if self.scale_depth else 1)
        return random_divisor(rows, side, self.swap_size, rng), random_divisor(cols, side, self.swap_size, rng)


class _Tiled(_Wrapped[HyperTile]):
    def attend(
        self, attn: nn.Module, hidden: torch.Tensor, temb: torch.Tensor | None, step: StepInfo | None
    ) -> torch.Tensor:
        assert step is not None  # needs_step: only called inside a sampler's call
        grid = token_grid(step.size, hidden.shape[1])
        if grid is None or grid[2] > self.patch.max_depth:
            return self.base(attn, hidden, None, None, temb)
        rows, cols, depth = grid
        nh, nw = self.patch.tiles(rows, cols, depth, random.Random(_step_seed(step, self.layer)))
        if nh * nw == 1:
            return self.base(attn, hidden, None, None, temb)
        b, n, c = hidden.shape
        th, tw = rows // nh, cols // nw
        tiles = hidden.view(b, nh, th, nw, tw, c).permute(0, 1, 3, 2, 4, 5).reshape(b * nh * nw, th * tw, c)
        out = self.base(attn, tiles, None, None, temb)
        out = out.view(b, nh, nw, th, tw, out.shape[-1]).permute(0, 1, 3, 2, 4, 5)
        return out.reshape(b, n, out.shape[-1])


# -- Token merging ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Merge:
    """A bipartite soft matching of a [batch, tokens] grid: the destination tokens (one random position per 2x2
    cell), and per item which source tokens stay (`kept`) and which merge (`moved`) into which destination
    (`into`). `merge` averages each moved token into its destination; `unmerge` copies results back."""

    sources: torch.Tensor  # [S] token indices
    destinations: torch.Tensor  # [D] token indices
    kept: torch.Tensor  # [B, S - r] positions in `sources`
    moved: torch.Tensor  # [B, r] positions in `sources`
    into: torch.Tensor  # [B, r] positions in `destinations`
    tokens: int

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        src, dst = x[:, self.sources], x[:, self.destinations]
        c = x.shape[-1]
        kept = src.gather(1, self.kept[..., None].expand(-1, -1, c))
        moved = src.gather(1, self.moved[..., None].expand(-1, -1, c))
        dst = dst.scatter_reduce(1, self.into[..., None].expand(-1, -1, c), moved, reduce="mean", include_self=True)
        return torch.cat([kept, dst], dim=1)

    def unmerge(self, y: torch.Tensor) -> torch.Tensor:
        b, c = y.shape[0], y.shape[-1]
        kept_count = self.kept.shape[1]
        kept, dst = y[:, :kept_count], y[:, kept_count:]
        out = y.new_zeros(b, self.tokens, c)
        out[:, self.destinations] = dst
        sources = self.sources.expand(b, -1)

        def put(positions: torch.Tensor, values: torch.Tensor) -> None:
            index = sources.gather(1, positions)[..., None].expand(-1, -1, c)
            out.scatter_(1, index, values)

        put(self.kept, kept)
        put(self.moved, dst.gather(1, self.into[..., None].expand(-1, -1, c)))
        return out


def bipartite_matching(metric: torch.Tensor, rows: int, cols: int, count: int, generator: torch.Generator) -> Merge:
    """ToMe for SD's matching: one destination per 2x2 cell (chosen at random), every other token a source; the
    `count` sources most similar (cosine) to some destination merge into it."""
    n = metric.shape[1]
    cells_h, cells_w = rows // 2, cols // 2
    pick = torch.randint(4, (cells_h, cells_w), generator=generator)
    is_dst = torch.zeros(rows, cols, dtype=torch.bool)
    cell_rows = torch.arange(cells_h)[:, None] * 2 + pick // 2
    cell_cols = torch.arange(cells_w)[None, :] * 2 + pick % 2
    is_dst[cell_rows, cell_cols] = True
    flat = is_dst.flatten().to(metric.device)
    destinations = flat.nonzero().flatten()
    sources = (~flat).nonzero().flatten()
    unit = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    scores = unit[:, sources] @ unit[:, destinations].transpose(1, 2)
    best, into = scores.max(dim=-1)
    order = best.argsort(dim=-1, descending=True)
    count = min(count, sources.numel())
    moved = order[:, :count]
    return Merge(sources, destinations, order[:, count:], moved, into.gather(1, moved), n)


@dataclass(frozen=True)
class TokenMerging:
    """Self-attention at full latent resolution over the tokens left after merging `ratio` of them (their results
    copied back to the merged positions); ratio 0 is plain attention."""

    ratio: float

    def attach(self, unet: nn.Module) -> list[ProcessorSwap]:
        if self.ratio <= 0:
            return []
        return [ProcessorSwap(a, _Merged(a.processor, i, self)) for i, a in enumerate(self_attention_layers(unet))]


class _Merged(_Wrapped[TokenMerging]):
    def attend(
        self, attn: nn.Module, hidden: torch.Tensor, temb: torch.Tensor | None, step: StepInfo | None
    ) -> torch.Tensor:
        assert step is not None  # needs_step: only called inside a sampler's call
        grid = token_grid(step.size, hidden.shape[1])
        count = int(hidden.shape[1] * self.patch.ratio)
        if grid is None or grid[2] > 0 or count <= 0 or min(grid[:2]) < 2:
            return self.base(attn, hidden, None, None, temb)
        generator = torch.Generator().manual_seed(_step_seed(step, self.layer))
        merge = bipartite_matching(hidden, grid[0], grid[1], count, generator)
        return merge.unmerge(self.base(attn, merge.merge(hidden), None, None, temb))


# -- The middle block: PAG's perturbation and SAG's attention map -----------------------------------------------


def middle_self_attention(unet: nn.Module) -> list[nn.Module]:
    layers = self_attention_layers(unet, "mid_block.")
    if not layers:
        raise ValueError("model: the UNet has no self-attention in its middle block (a U-Net model is needed)")
    return layers


def value_passthrough(attn: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Self-attention whose attention map is the identity: each token's output is its own projected value."""
    out = attn.to_out[1](attn.to_out[0](attn.to_v(hidden)))
    return out / attn.rescale_output_factor


class _Identity(_Wrapped[None]):
    needs_step = False

    def attend(
        self, attn: nn.Module, hidden: torch.Tensor, temb: torch.Tensor | None, step: StepInfo | None
    ) -> torch.Tensor:
        return value_passthrough(attn, hidden)


@dataclass(frozen=True)
class MidBlockIdentity:
    """Every self-attention layer of the middle block as the identity map (Ahn et al. 2024's perturbation)."""

    def attach(self, unet: nn.Module) -> list[ProcessorSwap]:
        return [ProcessorSwap(a, _Identity(a.processor, i, None)) for i, a in enumerate(middle_self_attention(unet))]


def attention_received(attn: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """[batch, tokens]: the attention each token receives in a self-attention layer, summed over the queries and
    averaged over the heads (1 on average; above 1 where many queries look)."""
    b, n, _ = hidden.shape
    q = attn.to_q(hidden).view(b, n, attn.heads, -1).transpose(1, 2).float()
    k = attn.to_k(hidden).view(b, n, attn.heads, -1).transpose(1, 2).float()
    probs = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(dim=-1)
    return probs.mean(dim=1).sum(dim=1)


@dataclass(eq=False)
class AttentionRecorder:
    """Records, at each call, the attention received per token in the middle block's first self-attention layer
    for the rows of the negative conditioning (all rows when a call has none); SAG reads it after the call."""

    received: torch.Tensor | None = field(default=None, repr=False)

    def attach(self, unet: nn.Module) -> list[ProcessorSwap]:
        layer = middle_self_attention(unet)[0]
        return [ProcessorSwap(layer, _Recording(layer.processor, 0, self))]


class _Recording(_Wrapped["AttentionRecorder"]):
    def attend(
        self, attn: nn.Module, hidden: torch.Tensor, temb: torch.Tensor | None, step: StepInfo | None
    ) -> torch.Tensor:
        assert step is not None  # needs_step: only called inside a sampler's call
        out = self.base(attn, hidden, None, None, temb)
        rows = step.negative.to(hidden.device)
        if rows.shape[0] != hidden.shape[0] or not bool(rows.any()):
            rows = torch.ones(hidden.shape[0], dtype=torch.bool, device=hidden.device)
        self.patch.received = attention_received(attn, hidden[rows]).detach()
        return out


def received_mask(received: torch.Tensor, size: tuple[int, int], batch: int, threshold: float = 1.0) -> torch.Tensor:
    """[batch, 1, H, W] 0/1 mask of the latent positions whose token receives more than `threshold` attention."""
    grid = token_grid(size, received.shape[-1])
    if grid is None:
        raise ValueError(f"the recorded attention has {received.shape[-1]} tokens, no grid of a {size} latent")
    rows, cols, _depth = grid
    mask = (received[:batch] > threshold).float().view(-1, 1, rows, cols)
    return torch.nn.functional.interpolate(mask, size=size, mode="nearest")


def gaussian_blur(x: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """A `size`-tap Gaussian blur over the last two dimensions (reflected edges); sigma 0 leaves x as is."""
    if sigma <= 0:
        return x
    offsets = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    taps = (taps / taps.sum()).to(x)
    c = x.shape[1]
    pad = size // 2
    out = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    out = torch.nn.functional.conv2d(out, taps.view(1, 1, 1, -1).expand(c, 1, 1, size), groups=c)
    return torch.nn.functional.conv2d(out, taps.view(1, 1, -1, 1).expand(c, 1, size, 1), groups=c)


def blur_masked(x0: torch.Tensor, received: torch.Tensor, sigma: float) -> torch.Tensor:
    """Hong et al. 2023's degraded estimate: `x0` blurred where the middle block's attention concentrates."""
    mask = received_mask(received, (x0.shape[2], x0.shape[3]), x0.shape[0]).to(x0)
    return gaussian_blur(x0, 9, sigma) * mask + x0 * (1 - mask)
