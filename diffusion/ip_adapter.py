"""IP-Adapter: image prompts through decoupled cross-attention, from the public weight files.

A file holds an image projection (`image_proj.*`: CLIP vision features -> a few context tokens) and, for every
cross-attention layer of the UNet, a key and a value projection of those tokens (`ip_adapter.N.to_k_ip/to_v_ip`,
N counting the UNet's attention processors in diffusers' order). Applied, each cross-attention layer adds
`scale * attention(q, K_ip, V_ip)` to its text attention. The adapter goes onto a shared copy of the UNet
(`lora.shared_copy`) whose cross-attention processors carry it; the cached base model is never touched.

Variants, told apart by shapes (and by the file name where shapes are equal): base and light (linear projection
of the image embedding to 4 tokens), plus and plus-face (a perceiver resampler over the penultimate hidden states),
full-face (an MLP over every hidden-state token); the CLIP vision encoder they need follows from the input width.
"""

from __future__ import annotations

import math
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from diffusion.checkpoint import SAFETENSORS_SUFFIXES, read_tensors
from diffusion.clip_vision import CLIPVision
from diffusion.lora import shared_copy
from diffusion.step import StepInfo, current_step

ENCODERS = {768: "ViT-L/14", 1024: "ViT-H/14", 1280: "ViT-H/14", 1664: "ViT-bigG/14"}
WEIGHT_TYPES = ("linear", "ease in", "ease out")
_IP_KEY = re.compile(r"ip_adapter\.(\d+)\.to_([kv])_ip\.weight$")


class IPAdapterError(ValueError):
    """An IP-Adapter file or use Loom cannot handle; the message names the file or input."""


@dataclass(frozen=True)
class IPAdapterArch:
    variant: str  # base, light, vit-g, plus, plus-face, full-face
    projection: str  # linear, resampler, mlp
    cross_dim: int  # token width = the UNet's cross-attention width
    clip_dim: int  # width of the CLIP vision features the projection reads
    uses_hidden_states: bool  # penultimate hidden states (plus, full-face) or the image embedding
    family: str  # sd1, sdxl, or the token width of another UNet
    encoder: str  # the CLIP vision encoder it was trained with


def read_ip_adapter(path: Path) -> dict[str, torch.Tensor]:
    """A file's tensors as `image_proj.*` / `ip_adapter.*`: .safetensors with those prefixes, or a .bin holding the
    two dicts (read with weights_only)."""
    path = Path(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        return read_tensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise IPAdapterError(f"{path.name}: holds more than plain tensors; convert it to .safetensors") from exc
    except Exception as exc:
        raise IPAdapterError(f"{path.name}: not a readable IP-Adapter file ({exc})") from exc
    if not isinstance(obj, Mapping):
        raise IPAdapterError(f"{path.name}: expected a dict of tensors, found {type(obj).__name__}")
    flat: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if isinstance(value, Mapping):
            flat.update({f"{key}.{k}": v for k, v in value.items() if isinstance(v, torch.Tensor)})
        elif isinstance(value, torch.Tensor):
            flat[key] = value
    return flat


def detect_ip_adapter(shapes: Mapping[str, tuple[int, ...]], name: str = "") -> IPAdapterArch:
    """The variant from tensor shapes; `name` (the file name) tells light from base and face from plus."""
    lower = name.lower()
    if "image_proj.latents" in shapes:
        clip_dim, cross_dim = shapes["image_proj.proj_in.weight"][1], shapes["image_proj.proj_out.weight"][0]
        variant, projection, hidden = ("plus-face" if "face" in lower else "plus"), "resampler", True
    elif "image_proj.proj.3.weight" in shapes:
        clip_dim, cross_dim = shapes["image_proj.proj.0.weight"][1], shapes["image_proj.proj.3.weight"][0]
        variant, projection, hidden = "full-face", "mlp", True
    elif "image_proj.proj.weight" in shapes and "image_proj.norm.weight" in shapes:
        clip_dim, cross_dim = shapes["image_proj.proj.weight"][1], shapes["image_proj.norm.weight"][0]
        variant = "vit-g" if clip_dim == 1280 else "light" if "light" in lower else "base"
        projection, hidden = "linear", False
    else:
        found = sorted({".".join(k.split(".")[:2]) for k in shapes})[:6]
        raise IPAdapterError(f"{name or 'file'}: not an IP-Adapter (no image_proj.* projection); found {found}")
    if not any(_IP_KEY.match(k) for k in shapes):
        raise IPAdapterError(f"{name or 'file'}: no ip_adapter.N.to_k_ip/to_v_ip weights")
    family = {768: "sd1", 2048: "sdxl"}.get(cross_dim, f"{cross_dim}-wide")
    encoder = "ViT-bigG/14" if (hidden and clip_dim == 1664) or (not hidden and clip_dim == 1280) else "ViT-H/14"
    if not hidden and clip_dim == 768:
        encoder = "ViT-L/14"
    return IPAdapterArch(variant, projection, cross_dim, clip_dim, hidden, family, encoder)


# -- image projections (their parameter names are the files') ------------------------------------------------------


class LinearProjection(nn.Module):
    """Image embedding -> `tokens` tokens: one linear layer, reshaped, then LayerNorm (base, light, ViT-G)."""

    def __init__(self, clip_dim: int, cross_dim: int, tokens: int) -> None:
        super().__init__()
        self.tokens, self.cross_dim = tokens, cross_dim
        self.proj = nn.Linear(clip_dim, cross_dim * tokens)
        self.norm = nn.LayerNorm(cross_dim)

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(embeds).reshape(-1, self.tokens, self.cross_dim))


class MLPProjection(nn.Module):
    """Every hidden-state token through Linear-GELU-Linear-LayerNorm (full-face)."""

    def __init__(self, clip_dim: int, cross_dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.Linear(clip_dim, clip_dim), nn.GELU(), nn.Linear(clip_dim, cross_dim), nn.LayerNorm(cross_dim)
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden)


class PerceiverAttention(nn.Module):
    """Latent queries attend to the image features and themselves (the resampler's attention)."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, features: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        features, latents = self.norm1(features), self.norm2(latents)
        batch = latents.shape[0]
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([features, latents], dim=1)).chunk(2, dim=-1)
        q, k, v = (t.reshape(batch, -1, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(batch, -1, self.heads * self.head_dim))


class Resampler(nn.Module):
    """Perceiver resampler: learned latent queries refined over the hidden states, projected to tokens (plus)."""

    def __init__(
        self, dim: int, depth: int, heads: int, head_dim: int, queries: int, clip_dim: int, cross_dim: int, ff_mult: int
    ) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.zeros(1, queries, dim))
        self.proj_in = nn.Linear(clip_dim, dim)
        self.proj_out = nn.Linear(dim, cross_dim)
        self.norm_out = nn.LayerNorm(cross_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PerceiverAttention(dim, heads, head_dim),
                    nn.Sequential(
                        nn.LayerNorm(dim),
                        nn.Linear(dim, dim * ff_mult, bias=False),
                        nn.GELU(),
                        nn.Linear(dim * ff_mult, dim, bias=False),
                    ),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        latents = self.latents.repeat(hidden.shape[0], 1, 1)
        features = self.proj_in(hidden)
        for attention, feed_forward in self.layers:  # type: ignore[misc]
            latents = attention(features, latents) + latents
            latents = feed_forward(latents) + latents
        return self.norm_out(self.proj_out(latents))


def build_projection(arch: IPAdapterArch, shapes: Mapping[str, tuple[int, ...]]) -> nn.Module:
    if arch.projection == "linear":
        return LinearProjection(arch.clip_dim, arch.cross_dim, shapes["image_proj.proj.weight"][0] // arch.cross_dim)
    if arch.projection == "mlp":
        return MLPProjection(arch.clip_dim, arch.cross_dim)
    _, queries, dim = shapes["image_proj.latents"]
    depth = 1 + max(int(k.split(".")[2]) for k in shapes if k.startswith("image_proj.layers."))
    inner = shapes["image_proj.layers.0.0.to_q.weight"][0]
    head_dim = 64
    ff_mult = shapes["image_proj.layers.0.1.1.weight"][0] // dim
    return Resampler(dim, depth, max(1, inner // head_dim), head_dim, queries, arch.clip_dim, arch.cross_dim, ff_mult)


@dataclass(eq=False)
class IPAdapter:
    """The IPADAPTER socket value: the projection and the per-layer key/value weights (index -> (k, v))."""

    arch: IPAdapterArch
    projection: nn.Module
    layers: dict[int, tuple[torch.Tensor, torch.Tensor]]

    def tokens(self, features: torch.Tensor) -> torch.Tensor:
        """CLIP vision features (embeds [B, D] or hidden states [B, T, D]) -> context tokens [B, N, cross_dim]."""
        if features.shape[-1] != self.arch.clip_dim:
            raise IPAdapterError(
                f"clip_vision: features are {features.shape[-1]} wide, this {self.arch.variant} IP-Adapter reads "
                f"{self.arch.clip_dim} (use the {self.arch.encoder} encoder)"
            )
        with torch.no_grad():
            return self.projection(features.float())


def load_ip_adapter(path: Path) -> IPAdapter:
    """An IP-Adapter from a public weight file (.bin or .safetensors)."""
    name = Path(path).name
    tensors = read_ip_adapter(path)
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    arch = detect_ip_adapter(shapes, name)
    with torch.device("meta"):
        projection = build_projection(arch, shapes)
    proj_state = {k.removeprefix("image_proj."): v.float() for k, v in tensors.items() if k.startswith("image_proj.")}
    try:
        projection.load_state_dict(proj_state, strict=True, assign=True)
    except RuntimeError as exc:
        raise IPAdapterError(f"{name}: image_proj tensors do not fit the {arch.variant} projection ({exc})") from exc
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        if m := _IP_KEY.match(key):
            layers.setdefault(int(m.group(1)), {})[m.group(2)] = tensor.float()
    incomplete = sorted(i for i, kv in layers.items() if len(kv) != 2)
    if incomplete:
        raise IPAdapterError(f"{name}: layer(s) {incomplete} lack to_k_ip or to_v_ip")
    return IPAdapter(arch, projection.eval().requires_grad_(False), {i: (kv["k"], kv["v"]) for i, kv in layers.items()})


# -- applying: decoupled cross-attention -----------------------------------------------------------------------


@dataclass(frozen=True)
class IPTokens:
    """Projected image tokens for the positive rows and the negative (unconditional) rows, [1, N, C] each."""

    positive: torch.Tensor
    negative: torch.Tensor


@dataclass(frozen=True, eq=False)
class IPLayerUse:
    """One adapter acting on one cross-attention layer."""

    key: torch.Tensor
    value: torch.Tensor
    tokens: IPTokens
    weight: float
    start: float
    end: float
    mask: torch.Tensor | None  # [H, W] in 0..1 over the latent, or None for everywhere
    _moved: dict[tuple[object, ...], tuple[torch.Tensor, ...]] = field(default_factory=dict, repr=False)

    def acts(self, percent: float) -> bool:
        return self.weight != 0.0 and self.start <= percent <= self.end

    def on(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """(key, value, positive tokens, negative tokens) on `device` in `dtype`, moved once."""
        cache_key = (device, dtype)
        if cache_key not in self._moved:
            parts = (self.key, self.value, self.tokens.positive, self.tokens.negative)
            self._moved[cache_key] = tuple(t.to(device, dtype) for t in parts)
        return self._moved[cache_key]


class IPAttnProcessor:
    """A cross-attention processor: the layer's own processor, plus each acting adapter's image attention.

    Immutable, and shared rather than copied when the UNet is copied (stacking builds a new one)."""

    def __init__(self, base: object, uses: tuple[IPLayerUse, ...]) -> None:
        self.base, self.uses = base, uses

    def __deepcopy__(self, memo: dict) -> IPAttnProcessor:
        return self

    def __call__(
        self,
        attn: nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        out = self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb)  # type: ignore[operator]
        step = current_step()
        acting = [u for u in self.uses if step is not None and u.acts(step.percent)]
        if step is None or not acting or hidden_states.ndim != 3:
            return out
        batch, seq, _ = hidden_states.shape
        heads = attn.heads
        q = attn.to_q(hidden_states)
        q = q.reshape(batch, seq, heads, -1).transpose(1, 2)
        negative = step.negative.to(hidden_states.device).view(-1, 1, 1)
        if negative.shape[0] != batch:
            negative = negative[:1].expand(batch, 1, 1)
        extra = torch.zeros(batch, seq, q.shape[1] * q.shape[3], device=q.device, dtype=q.dtype)
        for use in acting:
            k_w, v_w, pos, neg = use.on(q.device, q.dtype)
            tokens = torch.where(negative, neg, pos)
            k = F.linear(tokens, k_w).reshape(batch, tokens.shape[1], heads, -1).transpose(1, 2)
            v = F.linear(tokens, v_w).reshape(batch, tokens.shape[1], heads, -1).transpose(1, 2)
            image = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, seq, -1)
            scale: torch.Tensor | float = use.weight
            if use.mask is not None:
                scale = use.weight * token_mask(use.mask, step, seq).to(q.device, q.dtype)
            extra = extra + image * scale
        projected = F.linear(extra, attn.to_out[0].weight.to(extra.dtype))
        return out + projected.to(out.dtype) / attn.rescale_output_factor


def token_mask(mask: torch.Tensor, step: StepInfo, seq: int) -> torch.Tensor:
    """A [H, W] mask over the whole latent resized to a layer's token grid (the latent the call sees, downscaled to
    `seq` tokens), as [1, seq, 1]; for a call on an area of the latent, the mask's part over that area."""
    grid = mask.float()[None, None]
    if step.crop is not None:
        full_h, full_w, y0, y1, x0, x1 = step.crop
        grid = F.interpolate(grid, size=(full_h, full_w), mode="bilinear", align_corners=False)[..., y0:y1, x0:x1]
    height, width = step.size
    factor = math.sqrt(height * width / seq)
    grid_h = max(1, round(height / factor))
    grid_w = seq // grid_h
    resized = F.interpolate(grid, size=(grid_h, grid_w), mode="bilinear", align_corners=False)
    return resized.reshape(1, seq, 1)


def cross_attention_layers(unet: nn.Module) -> list[tuple[int, str]]:
    """(processor index, attention module name) of every cross-attention layer, in diffusers' processor order
    (the order the files' `ip_adapter.N` indices count)."""
    names = list(unet.attn_processors)  # type: ignore[attr-defined]
    return [(i, n.removesuffix(".processor")) for i, n in enumerate(names) if n.endswith("attn2.processor")]


def layer_weights(count: int, weight: float, weight_type: str) -> list[float]:
    """Per-layer weights from the first cross-attention layer (input side) to the last (output side): constant
    ("linear"), rising from 0 to `weight` ("ease in") or falling from `weight` to 0 ("ease out")."""
    if weight_type not in WEIGHT_TYPES:
        raise IPAdapterError(f"weight_type: expected one of {WEIGHT_TYPES}, got {weight_type!r}")
    if weight_type == "linear" or count == 1:
        return [weight] * count
    ramp = [i / (count - 1) for i in range(count)]
    return [weight * (r if weight_type == "ease in" else 1 - r) for r in ramp]


def apply_ip_adapter(
    unet: nn.Module,
    adapter: IPAdapter,
    tokens: IPTokens,
    weight: float,
    start: float = 0.0,
    end: float = 1.0,
    weight_type: str = "linear",
    mask: torch.Tensor | None = None,
) -> nn.Module:
    """A shared copy of `unet` whose cross-attention layers also attend to `tokens`; `unet` is unchanged.

    Adapters stack: applying to an adapted UNet keeps the adapters it has."""
    layers = cross_attention_layers(unet)
    missing = [i for i, _ in layers if i not in adapter.layers]
    if missing or len(adapter.layers) != len(layers):
        raise IPAdapterError(
            f"ipadapter: the {adapter.arch.variant} adapter has {len(adapter.layers)} attention layers, the model "
            f"{len(layers)} cross-attention layers (an {adapter.arch.family} adapter on another model family?)"
        )
    weights = layer_weights(len(layers), weight, weight_type)
    clone = shared_copy(unet)
    for (index, name), layer_weight in zip(layers, weights, strict=True):
        attention = clone.get_submodule(name)
        key, value = adapter.layers[index]
        if tuple(key.shape) != tuple(attention.to_k.weight.shape):
            raise IPAdapterError(
                f"ipadapter: layer {index} key is {tuple(key.shape)}, the model's {name}.to_k "
                f"{tuple(attention.to_k.weight.shape)}"
            )
        use = IPLayerUse(key, value, tokens, layer_weight, start, end, mask)
        current = attention.processor
        if isinstance(current, IPAttnProcessor):
            attention.processor = IPAttnProcessor(current.base, (*current.uses, use))
        else:
            attention.processor = IPAttnProcessor(current, (use,))
    return clone


def weighted_tokens(parts: Sequence[tuple[torch.Tensor, float]]) -> torch.Tensor:
    """Several images' tokens ([n, N, C] each) with their weights, concatenated into one [1, sum N, C] prompt."""
    return torch.cat([(t * w).reshape(1, -1, t.shape[-1]) for t, w in parts], dim=1)


def image_tokens(
    adapter: IPAdapter,
    vision: CLIPVision,
    images: Sequence[tuple[torch.Tensor, float]],
    noise: float = 0.0,
    crop: str = "center",
) -> IPTokens:
    """The prompt tokens of weighted reference images (IMAGE batches), and their unconditional counterpart.

    The negative is what the adapters were trained to read as "no image": a zero embedding (linear projections)
    or the hidden states of a zero image; with `noise` > 0 it is the encoding of that much seeded noise instead,
    which weakens the pull towards the reference."""
    if not images:
        raise IPAdapterError("image: no reference image given")
    positive, negative = [], []
    size = vision.arch.image_size
    generator = torch.Generator("cpu").manual_seed(0)
    for image, weight in images:
        out = vision.encode(image, crop)
        features = out.penultimate_hidden_states if adapter.arch.uses_hidden_states else out.image_embeds
        positive.append((adapter.tokens(features), weight))
        if noise > 0 or adapter.arch.uses_hidden_states:
            pixels = noise * torch.randn(features.shape[0], 3, size, size, generator=generator)
            blank = vision.encode_pixels(pixels)
            empty = blank.penultimate_hidden_states if adapter.arch.uses_hidden_states else blank.image_embeds
        else:
            empty = torch.zeros_like(features)
        negative.append((adapter.tokens(empty), weight))
    return IPTokens(weighted_tokens(positive), weighted_tokens(negative))
