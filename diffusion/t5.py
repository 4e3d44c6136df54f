"""The T5 (v1.1) text encoder of FLUX and SD3: architecture from shapes, transformers' T5EncoderModel built on the
meta device and filled from the file, and its SentencePiece tokenizer read from local files only.

Creators' `t5xxl_*.safetensors` files hold the encoder under transformers' names (`encoder.block.N...`, `shared`)
and no tokenizer, so the tokenizer is looked up beside the file: `spiece.model` (SentencePiece) or `tokenizer.json`
(the fast-tokenizer form), optionally prefixed with the encoder file's stem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from diffusion import offline
from diffusion.checkpoint import CheckpointError, assign_weights, build_empty
from diffusion.detect import Shapes, UnknownModel, _indices

T5_MARK = "encoder.block.0.layer.0.SelfAttention.q.weight"
TOKENIZER_FILES = ("spiece.model", "tokenizer.json")
PAD, EOS = 0, 1


@dataclass(frozen=True)
class T5Arch:
    prefix: str
    vocab: int
    d_model: int
    d_kv: int
    d_ff: int
    layers: int
    heads: int
    buckets: int
    gated: bool

    def config(self) -> dict:
        return {
            "vocab_size": self.vocab,
            "d_model": self.d_model,
            "d_kv": self.d_kv,
            "d_ff": self.d_ff,
            "num_layers": self.layers,
            "num_heads": self.heads,
            "relative_attention_num_buckets": self.buckets,
            "feed_forward_proj": "gated-gelu" if self.gated else "relu",
            "is_encoder_decoder": False,
            "use_cache": False,
            "pad_token_id": PAD,
            "eos_token_id": EOS,
        }


def is_t5(shapes: Shapes) -> bool:
    return any(k.endswith(T5_MARK) for k in shapes)


def detect_t5(shapes: Shapes) -> T5Arch:
    prefix = next((k[: -len(T5_MARK)] for k in shapes if k.endswith(T5_MARK)), None)
    if prefix is None:
        raise UnknownModel("no T5 encoder (encoder.block.0.layer.0.SelfAttention.q)")
    p = prefix
    try:
        emb = shapes.get(f"{p}shared.weight") or shapes[f"{p}encoder.embed_tokens.weight"]
        bias = shapes[f"{p}encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
        gated = f"{p}encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in shapes
        ff = shapes[f"{p}encoder.block.0.layer.1.DenseReluDense.{'wi_0' if gated else 'wi'}.weight"]
        inner = shapes[f"{p}{T5_MARK}"][0]
    except KeyError as exc:
        raise UnknownModel(f"incomplete T5 encoder: missing {exc}") from exc
    heads = bias[1]
    return T5Arch(
        prefix=prefix,
        vocab=emb[0],
        d_model=emb[1],
        d_kv=inner // heads,
        d_ff=ff[0],
        layers=len(_indices(shapes, rf"{re.escape(p)}encoder\.block\.(\d+)\.")),
        heads=heads,
        buckets=bias[0],
        gated=gated,
    )


def build_t5(arch: T5Arch, state: Mapping[str, torch.Tensor], what: str, dtype: torch.dtype) -> nn.Module:
    """T5EncoderModel on meta, given the file's tensors (the tied embedding filled from whichever is stored)."""
    tf = offline.transformers()
    config = tf.T5Config(**arch.config())
    module = build_empty(lambda: tf.T5EncoderModel(config))
    p = arch.prefix
    tensors = {k[len(p) :]: state[k] for k in state if k.startswith(p)}
    shared = tensors.get("shared.weight", tensors.get("encoder.embed_tokens.weight"))
    tensors["shared.weight"] = tensors["encoder.embed_tokens.weight"] = shared
    expected = module.state_dict()
    return assign_weights(module, {k: v for k, v in tensors.items() if k in expected}, what, dtype)


class T5Tokenizer:
    """Text -> T5 ids ending in </s>, from `spiece.model` (via sentencepiece) or `tokenizer.json` (via tokenizers)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if self.path.name.endswith("tokenizer.json"):
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.path))
            self._encode = lambda text: tok.encode(text, add_special_tokens=False).ids
            self.size = tok.get_vocab_size()
        else:
            import sentencepiece

            sp = sentencepiece.SentencePieceProcessor(model_file=str(self.path))
            self._encode = lambda text: list(sp.encode(text))
            self.size = sp.get_piece_size()

    def __call__(self, text: str) -> list[int]:
        return [*self._encode(text), EOS]


def find_tokenizer(encoder_file: Path) -> Path:
    """`<stem>.spiece.model`, `<stem>.tokenizer.json`, `spiece.model` or `tokenizer.json` beside the encoder, or
    in a `tokenizer/`/`tokenizer_2/` folder next to it (diffusers folders); an error naming where to put one."""
    folder = Path(encoder_file).parent
    stem = Path(encoder_file).stem
    candidates = [folder / f"{stem}.{n}" for n in TOKENIZER_FILES] + [folder / n for n in TOKENIZER_FILES]
    candidates += [folder.parent / sub / n for sub in ("tokenizer_2", "tokenizer") for n in TOKENIZER_FILES]
    for path in candidates:
        if path.is_file():
            return path
    raise CheckpointError(
        f"{Path(encoder_file).name}: the T5 tokenizer is missing; put the T5 v1.1 `spiece.model` (or its "
        f"`tokenizer.json`) beside it in {folder} (Loom reads it from local files only)"
    )


def run_t5(module: nn.Module, ids: list[int], device: torch.device) -> torch.Tensor:
    """Hidden states [1, tokens, d_model] of one token sequence (T5 has relative positions: any length)."""
    vocab = module.config.vocab_size
    if max(ids) >= vocab:
        raise CheckpointError(f"T5 tokenizer id {max(ids)} is outside the encoder's {vocab}-token vocabulary")
    tokens = torch.tensor([ids], device=device)
    return module(input_ids=tokens).last_hidden_state.float()
