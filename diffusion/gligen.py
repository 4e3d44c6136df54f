"""GLIGEN (Li et al. 2023, "GLIGEN: Open-Set Grounded Text-to-Image Generation"): phrases placed in boxes.

A GLIGEN file holds a position net (each box's phrase embedding and Fourier-embedded corners -> one grounding
token) and, for every transformer block of the UNet it was trained for, a gated self-attention layer ("fuser")
inserted between the block's self-attention and its cross-attention:

    x = x + tanh(alpha_attn) * attn(norm1([x, linear(tokens)]))[:, :visual]
    x = x + tanh(alpha_dense) * ff(norm2(x))

Keys are the LDM layout: `position_net.*` and `<input_blocks.1.1|middle_block.1|...>.transformer_blocks.<k>.fuser.*`.

The layers join a sampler's UNet call through hooks attached for that call only (`gligen_attached`): the block's
input is remembered and its self-attention output is shifted by what the fuser adds, so the block computes
`fuser(x + attn1(x))` and then continues as usual. The cached UNet module never changes; rows of the batch whose
conditioning has no boxes are left as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from diffusion.checkpoint import read_tensors
from diffusion.ldm_names import ldm_module_names

MAX_OBJECTS = 30
FOURIER_FREQS = 8
_FUSER = re.compile(r"^(.+\.transformer_blocks\.\d+)\.fuser\.(.+)$")


class GligenError(ValueError):
    """A GLIGEN file Loom cannot use, or one that does not fit the model."""


def fourier_embed(boxes: torch.Tensor, freqs: int = FOURIER_FREQS, temperature: float = 100.0) -> torch.Tensor:
    """[..., 4] box corners -> [..., 8 * freqs]: sin and cos of each corner at `freqs` geometric frequencies."""
    bands = temperature ** (torch.arange(freqs, device=boxes.device, dtype=boxes.dtype) / freqs)
    return torch.cat([f(band * boxes) for band in bands for f in (torch.sin, torch.cos)], dim=-1)


class PositionNet(nn.Module):
    """Phrase embedding + box -> grounding token; padding slots take learned null features."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        position_dim = FOURIER_FREQS * 2 * 4
        self.linears = nn.Sequential(
            nn.Linear(in_dim + position_dim, 512), nn.SiLU(), nn.Linear(512, 512), nn.SiLU(), nn.Linear(512, out_dim)
        )
        self.null_positive_feature = nn.Parameter(torch.zeros(in_dim))
        self.null_position_feature = nn.Parameter(torch.zeros(position_dim))

    def forward(self, boxes: torch.Tensor, masks: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        masks = masks[..., None]
        positions = fourier_embed(boxes) * masks + (1 - masks) * self.null_position_feature.view(1, 1, -1)
        phrases = embeddings * masks + (1 - masks) * self.null_positive_feature.view(1, 1, -1)
        return self.linears(torch.cat([phrases, positions], dim=-1))


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (p(x).view(b, n, self.heads, -1).transpose(1, 2) for p in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class _GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class _FeedForward(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(_GEGLU(dim, 4 * dim), nn.Identity(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GatedSelfAttention(nn.Module):
    """One fuser: self-attention over the visual tokens and the grounding tokens, gated by tanh(alpha)."""

    def __init__(self, query_dim: int, token_dim: int) -> None:
        super().__init__()
        # GLIGEN's SD 1.x release uses 8 heads; other widths use 64-wide heads.
        heads, head_dim = (8, query_dim // 8) if token_dim == 768 else (max(1, query_dim // 64), min(64, query_dim))
        self.linear = nn.Linear(token_dim, query_dim)
        self.attn = _Attention(query_dim, heads, head_dim)
        self.ff = _FeedForward(query_dim)
        self.norm1, self.norm2 = nn.LayerNorm(query_dim), nn.LayerNorm(query_dim)
        self.alpha_attn = nn.Parameter(torch.tensor(0.0))
        self.alpha_dense = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        visual = x.shape[1]
        mixed = self.norm1(torch.cat([x, self.linear(tokens)], dim=1))
        x = x + torch.tanh(self.alpha_attn) * self.attn(mixed)[:, :visual]
        return x + torch.tanh(self.alpha_dense) * self.ff(self.norm2(x))


@dataclass(eq=False)
class Gligen:
    """The GLIGEN socket value: the position net and the fuser of each transformer block (by LDM name)."""

    position_net: PositionNet
    fusers: dict[str, GatedSelfAttention]
    phrase_dim: int

    def loom_nbytes(self) -> int:
        modules = [self.position_net, *self.fusers.values()]
        return sum(p.numel() * p.element_size() for m in modules for p in m.parameters())

    def tokens(self, boxes: Sequence[GligenBox], size: tuple[int, int], rows: int, like: torch.Tensor) -> torch.Tensor:
        """The grounding tokens [rows, 30, width] of `boxes` on a latent of `size` (height, width) cells."""
        height, width = size
        corners = torch.zeros(MAX_OBJECTS, 4)
        masks = torch.zeros(MAX_OBJECTS)
        phrases = torch.zeros(MAX_OBJECTS, self.phrase_dim)
        for i, box in enumerate(boxes[:MAX_OBJECTS]):
            corners[i] = torch.tensor([box.x / width, box.y / height, (box.x + box.width) / width,
                                       (box.y + box.height) / height])  # fmt: skip
            masks[i] = 1.0
            phrases[i] = box.embedding.reshape(-1).float()
        net = self.position_net.to(like.device)
        with torch.no_grad():
            out = net(corners[None].to(like.device), masks[None].to(like.device), phrases[None].to(like.device))
        return out.to(like.dtype).expand(rows, -1, -1)


@dataclass(frozen=True)
class GligenBox:
    """A phrase (its pooled text embedding) in a box, in latent cells (pixels / 8)."""

    embedding: torch.Tensor
    height: int
    width: int
    y: int
    x: int


@dataclass(frozen=True, eq=False)
class GligenBoxes:
    """What GLIGENTextBoxApply puts in a conditioning under "gligen": the model and the boxes so far."""

    model: Gligen
    boxes: tuple[GligenBox, ...]

    def plus(self, box: GligenBox) -> GligenBoxes:
        return GligenBoxes(self.model, (*self.boxes, box))


def gligen_from_tensors(tensors: Mapping[str, torch.Tensor], name: str = "GLIGEN") -> Gligen:
    """Build the position net and fusers from LDM-layout tensors."""
    if "position_net.null_positive_feature" not in tensors or "position_net.linears.4.weight" not in tensors:
        raise GligenError(f"{name}: not a GLIGEN file (no position_net.*)")
    phrase_dim = int(tensors["position_net.null_positive_feature"].shape[0])
    token_dim = int(tensors["position_net.linears.4.weight"].shape[0])
    position_net = PositionNet(phrase_dim, token_dim)
    states: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = _FUSER.match(key)
        if match is not None:
            states.setdefault(match.group(1), {})[match.group(2)] = tensor
    if not states:
        raise GligenError(f"{name}: no gated self-attention layers (*.transformer_blocks.*.fuser.*)")
    fusers: dict[str, GatedSelfAttention] = {}
    try:
        position_net.load_state_dict(
            {k.removeprefix("position_net."): v.float() for k, v in tensors.items() if k.startswith("position_net.")}
        )
        for block, state in states.items():
            weight = state["linear.weight"]
            fuser = GatedSelfAttention(int(weight.shape[0]), int(weight.shape[1]))
            fuser.load_state_dict({k: v.float() for k, v in state.items()})
            fusers[block] = fuser.eval().requires_grad_(False)
    except (RuntimeError, KeyError) as exc:
        raise GligenError(f"{name}: tensors do not fit GLIGEN's layers ({exc})") from exc
    return Gligen(position_net.eval().requires_grad_(False), fusers, phrase_dim)


def load_gligen(path: Path) -> Gligen:
    return gligen_from_tensors(read_tensors(Path(path)), Path(path).name)


def _blocks(unet: nn.Module) -> dict[str, nn.Module]:
    """LDM name (`input_blocks.1.1.transformer_blocks.0`) -> the UNet's transformer block."""
    blocks: dict[str, nn.Module] = {}
    for name, ldm in ldm_module_names(unet).items():
        if name.endswith(".norm1") and ".transformer_blocks." in name:
            blocks[ldm.removesuffix(".norm1")] = unet.get_submodule(name.removesuffix(".norm1"))
    return blocks


@contextmanager
def gligen_attached(unet: nn.Module, per_row: Sequence[GligenBoxes | None], size: tuple[int, int]) -> Iterator[None]:
    """Run the UNet calls inside with each row's GLIGEN boxes (None: that row has none)."""
    used = [g for g in per_row if g is not None]
    if not used:
        yield
        return
    models = {id(g.model): g.model for g in used}
    if len(models) > 1:
        raise GligenError("conditionings sampled together use different GLIGEN models")
    gligen = next(iter(models.values()))
    blocks = _blocks(unet)
    missing = [b for b in gligen.fusers if b not in blocks]
    if missing:
        raise GligenError(f"the GLIGEN model does not fit this UNet: it has no transformer block {missing[0]}")
    rows = [i for i, g in enumerate(per_row) if g is not None]
    handles = []
    for name, fuser in gligen.fusers.items():
        handles += _hook_block(blocks[name], fuser, gligen, per_row, rows, size)
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _hook_block(
    block: nn.Module,
    fuser: GatedSelfAttention,
    gligen: Gligen,
    per_row: Sequence[GligenBoxes | None],
    rows: list[int],
    size: tuple[int, int],
) -> list[Any]:
    seen: dict[str, torch.Tensor] = {}

    def remember(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        seen["x"] = args[0] if args else kwargs["hidden_states"]

    def shift(_module: nn.Module, _args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        summed = out + seen["x"]
        part = summed[rows]
        tokens = torch.cat([gligen.tokens(per_row[r].boxes, size, 1, part) for r in rows])  # type: ignore[union-attr]
        net = fuser.to(part.device, part.dtype)
        delta = torch.zeros_like(out)
        delta[rows] = net(part, tokens) - part
        return out + delta

    return [
        block.register_forward_pre_hook(remember, with_kwargs=True),
        block.attn1.register_forward_hook(shift),
    ]
