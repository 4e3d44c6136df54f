"""Style models: a CLIP vision encoding turned into extra prompt tokens appended to the text conditioning.

Two public file kinds: the T2I-Adapter style adapter (`style_embedding`, `ln_pre`, `transformer_layes.N.*`,
`ln_post`, `proj`: learned query tokens refined with the encoder's last hidden states by a small transformer,
then projected to the text width) and FLUX Redux (`redux_up`, `redux_down`: an MLP from SigLIP's hidden states
to the T5 width, one token per image patch).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from diffusion.checkpoint import CheckpointError, read_tensors
from diffusion.clip_vision import CLIPVisionOutput

STRENGTH_TYPES = ("multiply", "attn_bias")
# The T2I-Adapter style adapter's head count: not recorded in the file (the released one has 8).
T2I_STYLE_HEADS = 8
_LAYER = re.compile(r"transformer_layes\.(\d+)\.")


class StyleLayer(nn.Module):
    """A pre-norm transformer block (attention, then a QuickGELU MLP), in the sequence-first form."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.ModuleDict({"c_fc": nn.Linear(width, width * 4), "c_proj": nn.Linear(width * 4, width)})
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.ln_1(x)
        x = x + self.attn(normed, normed, normed, need_weights=False)[0]
        hidden = self.mlp["c_fc"](self.ln_2(x))
        return x + self.mlp["c_proj"](hidden * torch.sigmoid(1.702 * hidden))


class T2IStyleAdapter(nn.Module):
    """Learned style tokens appended to the image's hidden states, refined together, then projected."""

    def __init__(self, width: int, context_dim: int, tokens: int, layers: int, heads: int) -> None:
        super().__init__()
        self.style_embedding = nn.Parameter(torch.zeros(1, tokens, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer_layes = nn.Sequential(*(StyleLayer(width, heads) for _ in range(layers)))
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, context_dim))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        tokens = self.style_embedding.shape[1]
        x = torch.cat([hidden, self.style_embedding.expand(hidden.shape[0], -1, -1)], dim=1)
        x = self.transformer_layes(self.ln_pre(x).transpose(0, 1)).transpose(0, 1)
        return self.ln_post(x[:, -tokens:]) @ self.proj


class ReduxEncoder(nn.Module):
    """FLUX Redux: every image token through Linear-SiLU-Linear to the text width."""

    def __init__(self, image_dim: int, hidden_dim: int, text_dim: int) -> None:
        super().__init__()
        self.redux_up = nn.Linear(image_dim, hidden_dim)
        self.redux_down = nn.Linear(hidden_dim, text_dim)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.redux_down(F.silu(self.redux_up(hidden)))


@dataclass(eq=False)
class StyleModel:
    """The STYLE_MODEL socket value."""

    kind: str  # "t2i-style" or "redux"
    module: nn.Module
    image_dim: int  # width of the hidden states it reads
    context_dim: int  # width of the tokens it makes

    def tokens(self, output: CLIPVisionOutput) -> torch.Tensor:
        """The prompt tokens of an encoding's last hidden states: [images, tokens, context_dim]."""
        hidden = output.last_hidden_state
        if hidden.shape[-1] != self.image_dim:
            raise ValueError(
                f"clip_vision_output: hidden states are {hidden.shape[-1]} wide, this {self.kind} style model reads "
                f"{self.image_dim} ({'a SigLIP' if self.kind == 'redux' else 'a ViT-L/14 CLIP'} vision encoder)"
            )
        with torch.no_grad():
            return self.module(hidden.float())


def build_style_model(shapes: Mapping[str, tuple[int, ...]], name: str) -> StyleModel:
    """An empty style model of the file's kind and size."""
    if "style_embedding" in shapes and "proj" in shapes:
        _, tokens, width = shapes["style_embedding"]
        layers = 1 + max((int(m.group(1)) for k in shapes if (m := _LAYER.match(k))), default=-1)
        context = shapes["proj"][1]
        module: nn.Module = T2IStyleAdapter(width, context, tokens, layers, T2I_STYLE_HEADS)
        return StyleModel("t2i-style", module, width, context)
    if "redux_up.weight" in shapes and "redux_down.weight" in shapes:
        hidden, image_dim = shapes["redux_up.weight"]
        text_dim = shapes["redux_down.weight"][0]
        return StyleModel("redux", ReduxEncoder(image_dim, hidden, text_dim), image_dim, text_dim)
    found = sorted({k.split(".")[0] for k in shapes})[:6]
    raise CheckpointError(
        f"{name}: not a style model (T2I-Adapter style: style_embedding/proj; FLUX Redux: redux_up/redux_down); "
        f"found {found}"
    )


def load_style_model(path: Path) -> StyleModel:
    """A style model file (.safetensors, or a plain-tensor .pth/.bin/.ckpt)."""
    name = Path(path).name
    tensors = {k: v.float() for k, v in read_tensors(path).items()}
    model = build_style_model({k: tuple(v.shape) for k, v in tensors.items()}, name)
    try:
        model.module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{name}: tensors do not fit the {model.kind} style model ({exc})") from exc
    model.module.eval().requires_grad_(False)
    return model


def apply_style(conditioning: list, tokens: torch.Tensor, strength: float, strength_type: str) -> list[list[object]]:
    """Each conditioning entry with the style tokens ([n, T, C]: all images' tokens become one prompt) appended.

    "multiply" scales the tokens by `strength`; "attn_bias" keeps them and adds log(strength) to the attention
    logits towards them (attention favours them `strength` times as much), recorded per token in the entry's
    `attention_bias`. Once an entry has a bias, every later application extends it (zeros for its tokens unless it
    biases them too), and `attention_bias_group` records which application made each token (0: the prompt's own,
    then 1, 2, ...): in joint attention, where prompt tokens are queries too, a token is biased towards the tokens
    of later applications only, as in the reference."""
    if strength_type not in STRENGTH_TYPES:
        raise ValueError(f"strength_type: expected one of {STRENGTH_TYPES}, got {strength_type!r}")
    style = tokens.reshape(1, -1, tokens.shape[-1])
    if strength_type == "multiply":
        style = style * strength
    out: list[list[object]] = []
    for i, (text, opts) in enumerate(conditioning):
        if text.shape[-1] != style.shape[-1]:
            raise ValueError(
                f"conditioning: entry {i} is {text.shape[-1]} wide, the style model's tokens {style.shape[-1]} (a "
                "style model for another model family?)"
            )
        opts = dict(opts)
        previous = opts.get("attention_bias")
        biased = strength_type == "attn_bias" and strength != 1.0
        if previous is not None or biased:
            count = style.shape[1]
            text_bias = previous if previous is not None else torch.zeros(text.shape[1])
            text_group = opts.get("attention_bias_group")
            if text_group is None or text_group.shape[-1] != text_bias.shape[-1]:
                text_group = torch.zeros(text_bias.shape[-1], dtype=torch.long)
            group = int(text_group.max()) + 1 if text_group.numel() else 1
            value = (math.log(strength) if strength > 0 else -math.inf) if biased else 0.0
            opts["attention_bias"] = torch.cat([text_bias, torch.full((count,), value)])
            opts["attention_bias_group"] = torch.cat([text_group, torch.full((count,), group, dtype=torch.long)])
        rows = style.to(text.dtype).expand(text.shape[0], -1, -1)
        out.append([torch.cat([text, rows], dim=1), opts])
    return out
