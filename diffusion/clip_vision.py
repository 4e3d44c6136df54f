"""CLIP vision encoders (the image side of CLIP, and of SigLIP): single files in the transformers (`vision_model.*`)
or OpenCLIP (`visual.*`) layout, built as transformers' CLIPVisionModelWithProjection (or SiglipVisionModel) with
the file's tensors, and the image preprocessing the encoders were trained with.

IP-Adapter, unCLIP and style models read three things from an encoding: the image embedding, the penultimate
layer's hidden states and the last layer's. SigLIP (FLUX Redux reads its so400m-patch14-384 encoder,
`sigclip_vision_patch14_384.safetensors`) is told apart by what CLIP has and it lacks: a class token (its
positions are a square grid of patches, 27 x 27) and a projection. Its files may hold the attention-pooling head
(`vision_model.head.*`); no image prompt reads it, so it is left out, and the image embedding of a SigLIP encoding
is, as in the reference, the whole normalised last layer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from diffusion import offline
from diffusion.checkpoint import CheckpointError, TensorFile, assign_weights, build_empty
from diffusion.memory import ModelManager

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HF_PATCH = "vision_model.embeddings.patch_embedding.weight"
OPENCLIP_PATCH = "visual.conv1.weight"
# Width -> (name, activation): OpenAI's ViT-L/14 uses quick_gelu, the LAION OpenCLIP encoders gelu.
KNOWN_WIDTHS = {768: ("ViT-B", "quick_gelu"), 1024: ("ViT-L/14", "quick_gelu"), 1280: ("ViT-H/14", "gelu")}
KNOWN_WIDTHS[1664] = ("ViT-bigG/14", "gelu")
CROPS = ("center", "none")
SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)
SIGLIP_HEAD = "vision_model.head."
# Hidden width -> name of the public SigLIP encoders (so400m is the one FLUX Redux reads).
SIGLIP_NAMES = {768: "SigLIP base", 1024: "SigLIP large", 1152: "SigLIP so400m"}
# The published SigLIP input sizes. The patch grid does not always tell the size: so400m-patch14-384 sees 27 x 27
# patches of 14 px (378 px), the convolution dropping the last 6 px of its 384 px input.
SIGLIP_SIZES = (224, 256, 384, 448, 512)


@dataclass(frozen=True)
class VisionArch:
    """What the tensor shapes say about an encoder."""

    name: str
    hidden: int
    layers: int
    intermediate: int
    heads: int
    patch: int
    image_size: int
    projection_dim: int  # 0: none (SigLIP)
    hidden_act: str
    family: str = "clip"  # "clip" (CLIPVisionModelWithProjection) or "siglip" (SiglipVisionModel)

    @property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The pixel normalisation the encoder was trained with."""
        return (SIGLIP_MEAN, SIGLIP_STD) if self.family == "siglip" else (CLIP_MEAN, CLIP_STD)


@dataclass(frozen=True)
class CLIPVisionOutput:
    """One encoding of a batch of images (the CLIP_VISION_OUTPUT socket value)."""

    image_embeds: torch.Tensor  # CLIP: [B, projection_dim]; SigLIP: the last hidden state [B, tokens, hidden]
    last_hidden_state: torch.Tensor  # [B, tokens, hidden]
    penultimate_hidden_states: torch.Tensor  # [B, tokens, hidden]


@dataclass(eq=False)
class CLIPVision:
    """The CLIP_VISION socket value: a loaded encoder and the manager that places it."""

    module: nn.Module
    arch: VisionArch
    manager: ModelManager

    def encode(self, image: torch.Tensor, crop: str = "center") -> CLIPVisionOutput:
        """Encode IMAGE [B, H, W, C] (0..1) after the training preprocessing (see `preprocess`)."""
        mean, std = self.arch.mean_std
        return self.encode_pixels(preprocess(image, self.arch.image_size, crop, mean, std))

    def encode_pixels(self, pixels: torch.Tensor) -> CLIPVisionOutput:
        """Encode already normalised pixels [B, 3, S, S] (S = the encoder's image size)."""
        manager = self.manager
        manager.load([self.module])
        pixels = pixels.to(manager.device, manager.dtype)
        with torch.no_grad():
            out = self.module(pixel_values=pixels, output_hidden_states=True)
        last = out.last_hidden_state.float().cpu()
        return CLIPVisionOutput(
            image_embeds=last if self.arch.family == "siglip" else out.image_embeds.float().cpu(),
            last_hidden_state=last,
            penultimate_hidden_states=out.hidden_states[-2].float().cpu(),
        )


def preprocess(
    image: torch.Tensor,
    size: int,
    crop: str = "center",
    mean: tuple[float, ...] = CLIP_MEAN,
    std: tuple[float, ...] = CLIP_STD,
) -> torch.Tensor:
    """IMAGE [B, H, W, C] in 0..1 -> normalised pixels [B, 3, size, size] as CLIP's image processor makes them.

    "center": the shortest side is resized to `size` (bicubic, antialiased like PIL's resize) and the centre cut
    out; "none": the whole image is squashed to size x size (what SigLIP's own processor does; the reference
    honours the crop choice for SigLIP too). Values are clamped to 0..1 after resizing (the reference works on 8-bit
    images) and normalised with the encoder's mean and std (CLIP's; 0.5 for SigLIP)."""
    if crop not in CROPS:
        raise ValueError(f"crop: expected one of {CROPS}, got {crop!r}")
    if image.ndim != 4 or image.shape[-1] < 3:
        raise ValueError(f"image: expected an IMAGE [B, H, W, C>=3], got shape {tuple(image.shape)}")
    pixels = image[..., :3].movedim(-1, 1).float()
    height, width = pixels.shape[-2:]
    if crop == "center":
        scale = size / min(height, width)
        target = (max(size, round(height * scale)), max(size, round(width * scale)))
    else:
        target = (size, size)
    if target != (height, width):
        pixels = F.interpolate(pixels, size=target, mode="bicubic", align_corners=False, antialias=True)
    top, left = (target[0] - size) // 2, (target[1] - size) // 2
    pixels = pixels[..., top : top + size, left : left + size].clamp(0, 1)
    return (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def find_prefix(shapes: Mapping[str, tuple[int, ...]]) -> tuple[str, str]:
    """(prefix, layout) of the vision tower in a file: "hf" for `vision_model.*`, "openclip" for `visual.*`."""
    for key in shapes:
        for marker, layout in ((HF_PATCH, "hf"), (OPENCLIP_PATCH, "openclip")):
            if key.endswith(marker) and (key == marker or key[: -len(marker)].endswith(".")):
                return key[: -len(marker)], layout
    raise CheckpointError(
        f"not a CLIP vision encoder: no {HF_PATCH!r} or {OPENCLIP_PATCH!r}; names found: {sorted(shapes)[:5]}"
    )


def detect_vision(shapes: Mapping[str, tuple[int, ...]], prefix: str = "") -> VisionArch:
    """The architecture from tensor shapes under transformers' names (see `vision_state`)."""
    patch_shape = shapes[f"{prefix}{HF_PATCH}"]
    if len(patch_shape) != 4:
        raise CheckpointError(
            f"a linear patch embedding {tuple(patch_shape)}: a SigLIP 2 NaFlex encoder (variable resolution), which "
            "Loom does not build; use a fixed-resolution SigLIP file such as sigclip_vision_patch14_384"
        )
    hidden, _, patch, _ = patch_shape
    positions = shapes[f"{prefix}vision_model.embeddings.position_embedding.weight"][0]
    layer_rx = re.compile(re.escape(prefix) + r"vision_model\.encoder\.layers\.(\d+)\.")
    layers = 1 + max(int(m.group(1)) for k in shapes if (m := layer_rx.match(k)))
    intermediate = shapes[f"{prefix}vision_model.encoder.layers.0.mlp.fc1.weight"][0]
    heads = 16 if hidden >= 1024 else max(1, hidden // 64)
    if math.isqrt(positions) ** 2 == positions:  # a square grid of patches and no class token's position
        return _siglip_arch(hidden, layers, intermediate, heads, patch, positions)
    projection = shapes.get(f"{prefix}visual_projection.weight")
    if projection is None:
        raise CheckpointError("CLIP vision encoder without a projection (visual_projection / visual.proj)")
    name, act = KNOWN_WIDTHS.get(hidden, (f"ViT ({hidden} wide)", "gelu"))
    side = math.isqrt(positions - 1)
    return VisionArch(
        name=name,
        hidden=hidden,
        layers=layers,
        intermediate=intermediate,
        heads=heads,
        patch=patch,
        image_size=side * patch,
        projection_dim=projection[0],
        hidden_act=act,
    )


def _siglip_arch(hidden: int, layers: int, intermediate: int, heads: int, patch: int, positions: int) -> VisionArch:
    """A SigLIP encoder: one position per patch of a square image (729 = 27 x 27 patches of 14 px: 384 px),
    tanh-approximated GELU, no projection."""
    side = math.isqrt(positions)
    size = next((s for s in SIGLIP_SIZES if s // patch == side), side * patch)
    name = f"{SIGLIP_NAMES.get(hidden, f'SigLIP ({hidden} wide)')} patch{patch} {size}"
    return VisionArch(name, hidden, layers, intermediate, heads, patch, size, 0, "gelu_pytorch_tanh", "siglip")


def openclip_to_hf(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """OpenCLIP `visual.*` tensors under transformers' names (fused qkv split, `proj` transposed)."""
    v, out = f"{prefix}visual.", {}
    fixed = {
        "class_embedding": "embeddings.class_embedding",
        "conv1.weight": "embeddings.patch_embedding.weight",
        "positional_embedding": "embeddings.position_embedding.weight",
        "ln_pre.weight": "pre_layrnorm.weight",
        "ln_pre.bias": "pre_layrnorm.bias",
        "ln_post.weight": "post_layernorm.weight",
        "ln_post.bias": "post_layernorm.bias",
    }
    block = {
        "ln_1": "layer_norm1",
        "ln_2": "layer_norm2",
        "attn.out_proj": "self_attn.out_proj",
        "mlp.c_fc": "mlp.fc1",
        "mlp.c_proj": "mlp.fc2",
    }
    rx = re.compile(re.escape(v) + r"transformer\.resblocks\.(\d+)\.(.+)\.(weight|bias)$")
    for key, tensor in state.items():
        if not key.startswith(v):
            continue
        rest = key[len(v) :]
        if rest in fixed:
            out[f"vision_model.{fixed[rest]}"] = tensor
        elif rest == "proj":
            out["visual_projection.weight"] = tensor.t().contiguous()
        elif m := rx.match(key.replace("attn.in_proj_", "attn.in_proj.")):
            i, part, kind = m.groups()
            base = f"vision_model.encoder.layers.{i}."
            if part == "attn.in_proj":
                for name, chunk in zip(("q", "k", "v"), tensor.chunk(3, dim=0), strict=True):
                    out[f"{base}self_attn.{name}_proj.{kind}"] = chunk.contiguous()
            elif part in block:
                out[f"{base}{block[part]}.{kind}"] = tensor
    return out


def vision_state(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder's tensors under transformers' CLIPVisionModelWithProjection names, whatever the file's layout."""
    shapes = tensors.shapes if isinstance(tensors, TensorFile) else {k: tuple(v.shape) for k, v in tensors.items()}
    prefix, layout = find_prefix(shapes)
    if layout == "openclip":
        return openclip_to_hf(tensors, prefix)
    keep = (f"{prefix}vision_model.", f"{prefix}visual_projection.")
    return {
        k[len(prefix) :]: tensors[k]
        for k in shapes
        if k.startswith(keep) and not k.endswith("position_ids") and not k.startswith(f"{prefix}{SIGLIP_HEAD}")
    }


def module_state(arch: VisionArch, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors under transformers' CLIP names renamed for the module `build_vision` makes: SiglipVisionModel holds
    the `vision_model.` parts at its top level."""
    if arch.family != "siglip":
        return dict(state)
    return {k.removeprefix("vision_model."): v for k, v in state.items()}


def vision_config(arch: VisionArch) -> Any:
    """The transformers config of `arch`: a CLIPVisionConfig, or a SiglipVisionConfig without the pooling head."""
    tf = offline.transformers()
    sizes = {
        "hidden_size": arch.hidden,
        "intermediate_size": arch.intermediate,
        "num_hidden_layers": arch.layers,
        "num_attention_heads": arch.heads,
        "patch_size": arch.patch,
        "image_size": arch.image_size,
        "hidden_act": arch.hidden_act,
    }
    if arch.family == "siglip":
        config = tf.SiglipVisionConfig(**sizes, layer_norm_eps=1e-6, vision_use_head=False)
    else:
        config = tf.CLIPVisionConfig(**sizes, projection_dim=arch.projection_dim, layer_norm_eps=1e-5)
    config._attn_implementation = "sdpa"
    return config


def build_vision(arch: VisionArch) -> nn.Module:
    """An empty CLIPVisionModelWithProjection (SiglipVisionModel, for SigLIP) of `arch` (no download, no random
    initialisation)."""
    tf = offline.transformers()
    model = tf.SiglipVisionModel if arch.family == "siglip" else tf.CLIPVisionModelWithProjection
    config = vision_config(arch)
    return build_empty(lambda: model(config))


def load_clip_vision_state(state: Mapping[str, torch.Tensor], manager: ModelManager, name: str) -> CLIPVision:
    """A CLIPVision from tensors in either layout (a file's, or the part of a checkpoint holding one)."""
    try:
        hf = vision_state(state)
        arch = detect_vision({k: tuple(v.shape) for k, v in hf.items()})
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{name}: not a CLIP vision encoder Loom can build ({exc})") from exc
    what = f"{name}: {arch.name} vision encoder"
    module = assign_weights(build_vision(arch), module_state(arch, hf), what, manager.dtype)
    return CLIPVision(module, arch, manager)


def load_clip_vision(path: Path, manager: ModelManager) -> CLIPVision:
    """A single-file CLIP vision encoder (.safetensors, or a weights-only pickle)."""
    return load_clip_vision_state(TensorFile(path), manager, Path(path).name)
