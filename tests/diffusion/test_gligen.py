"""GLIGEN: the position net's grounding tokens, the gated self-attention joining a transformer block through
per-call hooks, and the file layout."""

from __future__ import annotations

import pytest
import torch

from diffusion.gligen import (
    MAX_OBJECTS,
    GligenBox,
    GligenBoxes,
    GligenError,
    _blocks,
    fourier_embed,
    gligen_attached,
    gligen_from_tensors,
)
from tests.diffusion.tiny_gligen import gligen_tensors
from tests.diffusion.tiny_lora_models import tiny_unet, unet_inputs


def test_fourier_embedding_and_padding_slots() -> None:
    boxes = torch.tensor([[0.0, 0.25, 0.5, 1.0]])
    emb = fourier_embed(boxes)
    assert emb.shape == (1, 64)
    assert torch.allclose(emb[0, :4], torch.sin(boxes[0])) and torch.allclose(emb[0, 4:8], torch.cos(boxes[0]))
    assert torch.allclose(emb[0, 8:12], torch.sin(100 ** (1 / 8) * boxes[0]))
    gligen = gligen_from_tensors(gligen_tensors(tiny_unet(), 6, 0.5))
    phrase = torch.randn(6)
    tokens = gligen.tokens([GligenBox(phrase, 2, 4, 1, 0)], (8, 8), 2, torch.zeros(1))
    assert tokens.shape == (2, MAX_OBJECTS, 16)
    assert torch.equal(tokens[:, 1], tokens[:, MAX_OBJECTS - 1]) and not torch.equal(tokens[:, 0], tokens[:, 1])
    with torch.no_grad():
        corners = torch.tensor([[[0 / 8, 1 / 8, 4 / 8, 3 / 8]]])  # x, y, x + width, y + height over the latent
        want = gligen.position_net(corners, torch.ones(1, 1), phrase[None, None])
    assert torch.allclose(tokens[0, 0], want[0, 0], atol=1e-6)


def test_gated_self_attention_joins_the_block_between_its_attentions() -> None:
    unet, inputs = tiny_unet(), unet_inputs()
    gligen = gligen_from_tensors(gligen_tensors(unet, 6, 0.7))
    name, block = next(iter(_blocks(unet).items()))
    boxes = GligenBoxes(gligen, (GligenBox(torch.randn(6), 2, 2, 0, 0),))
    x, context = torch.randn(2, 16, block.norm1.normalized_shape[0]), torch.randn(2, 5, 16)
    with torch.no_grad():
        plain = block(x, encoder_hidden_states=context)
        with gligen_attached(unet, [boxes, None], (8, 8)):
            hooked = block(x, encoder_hidden_states=context)
        h = x[:1] + block.attn1(block.norm1(x[:1]))
        h = gligen.fusers[name](h, gligen.tokens(boxes.boxes, (8, 8), 1, h))
        h = h + block.attn2(block.norm2(h), encoder_hidden_states=context[:1])
        want = h + block.ff(block.norm3(h))
    assert torch.allclose(hooked[:1], want[:1], atol=1e-5)
    assert torch.equal(hooked[1:], plain[1:])  # a row without boxes is untouched
    assert not torch.allclose(hooked[:1], plain[:1])
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in unet.modules())  # hooks removed
    with torch.no_grad(), gligen_attached(unet, [None, None], (8, 8)):
        assert torch.equal(block(x, encoder_hidden_states=context), plain)
    del inputs


def test_files_that_do_not_fit() -> None:
    with pytest.raises(GligenError, match="not a GLIGEN file"):
        gligen_from_tensors({"x": torch.zeros(1)})
    other = gligen_from_tensors(gligen_tensors(tiny_unet(sdxl=True), 6, 0.5))
    with (
        pytest.raises(GligenError, match="no transformer block"),
        gligen_attached(tiny_unet(), [GligenBoxes(other, ())], (8, 8)),
    ):
        pass
