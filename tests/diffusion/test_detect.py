"""Detection on tiny files and on full-size key/shape tables (built on the meta device: nothing is allocated)."""

from __future__ import annotations

import pytest
import torch

from diffusion.checkpoint import TensorFile
from diffusion.convert import hf_to_openclip, text_table, to_ldm, unet_table, vae_table
from diffusion.detect import UNET_PREFIX, VAE_PREFIX, TextArch, UNetArch, UnknownModel, VAEArch, detect
from diffusion.loader import build_text, build_unet, build_vae, canonical_text_keys
from diffusion.tiny import TEXT_PREFIXES, text_arch


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_tiny_files(tiny_files, family: str) -> None:
    path, modules = tiny_files[family]
    info = detect(TensorFile(path).shapes)
    assert info.family == family
    assert info.unet == modules.spec.unet and info.vae == modules.spec.vae and info.text == modules.spec.text
    assert info.prediction == ("v" if family == "sd2" else "eps")


def _full_text(family: str, index: int, hidden: int, layers: int, inter: int, proj: int | None) -> TextArch:
    base = text_arch(family, index, hidden, TEXT_PREFIXES[family][index])
    return TextArch(
        **{**base.__dict__, "layers": layers, "intermediate": inter, "heads": hidden // 64, "projection_dim": proj}
    )


FULL = {
    "sd1": (
        UNetArch(
            4,
            4,
            (320, 640, 1280, 1280),
            2,
            (True, True, True, False),
            (1, 1, 1, 0),
            True,
            1,
            768,
            False,
            None,
            (8, 8, 8, 8),
        ),
        (_full_text("sd1", 0, 768, 12, 3072, None),),
        0.18215,
    ),
    "sd2": (
        UNetArch(
            4,
            4,
            (320, 640, 1280, 1280),
            2,
            (True, True, True, False),
            (1, 1, 1, 0),
            True,
            1,
            1024,
            True,
            None,
            (5, 10, 20, 20),
        ),
        (_full_text("sd2", 0, 1024, 24, 4096, None),),
        0.18215,
    ),
    "sdxl": (
        UNetArch(4, 4, (320, 640, 1280), 2, (False, True, True), (0, 2, 10), True, 10, 2048, True, 2816, (5, 10, 20)),
        (_full_text("sdxl", 0, 768, 12, 3072, None), _full_text("sdxl", 1, 1280, 32, 5120, 1280)),
        0.13025,
    ),
}


def full_size_shapes(family: str) -> dict[str, tuple[int, ...]]:
    """The LDM key/shape table of a full-size checkpoint, from modules whose parameters live on `meta`."""
    unet_arch, texts, scale = FULL[family]
    vae_arch = VAEArch(3, 4, (128, 256, 512, 512), 2, scale)
    shapes = {
        k: tuple(v.shape)
        for k, v in to_ldm(build_unet(unet_arch, family).state_dict(), unet_table(unet_arch), UNET_PREFIX)
    }
    vae_sd = dict(build_vae(vae_arch).state_dict())
    for k, v in vae_sd.items():
        if ".mid_block.attentions.0." in k and k.endswith(".weight") and "group_norm" not in k:
            vae_sd[k] = torch.empty(*v.shape, 1, 1, device="meta")
    shapes.update({k: tuple(v.shape) for k, v in to_ldm(vae_sd, vae_table(vae_arch), VAE_PREFIX)})
    for arch in texts:
        sd = canonical_text_keys(build_text(arch))
        if arch.layout == "openclip":
            shapes.update({arch.prefix + k: tuple(v.shape) for k, v in hf_to_openclip(sd, arch).items()})
        else:
            shapes.update({k: tuple(v.shape) for k, v in to_ldm(sd, text_table(arch), arch.prefix)})
    return shapes


# Names and shapes as they appear in the published single-file checkpoints of each family.
KNOWN = {
    "sd1": {
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": (320, 320, 1, 1),
        "model.diffusion_model.input_blocks.3.0.op.weight": (320, 320, 3, 3),
        "model.diffusion_model.output_blocks.2.1.conv.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.output_blocks.5.2.conv.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight": (1280, 768),
        "model.diffusion_model.output_blocks.3.0.skip_connection.weight": (1280, 2560, 1, 1),
        "first_stage_model.encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
        "first_stage_model.decoder.up.3.upsample.conv.weight": (512, 512, 3, 3),
        "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight": (128, 256, 1, 1),
        "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.weight": (768, 3072),
    },
    "sd2": {
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": (320, 320),
        "cond_stage_model.model.transformer.resblocks.23.attn.in_proj_weight": (3072, 1024),
        "cond_stage_model.model.positional_embedding": (77, 1024),
        "cond_stage_model.model.ln_final.weight": (1024,),
    },
    "sdxl": {
        "model.diffusion_model.label_emb.0.0.weight": (1280, 2816),
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.1.attn1.to_q.weight": (640, 640),
        "model.diffusion_model.input_blocks.7.1.transformer_blocks.9.ff.net.2.weight": (1280, 5120),
        "model.diffusion_model.output_blocks.2.2.conv.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.output_blocks.6.0.skip_connection.weight": (320, 960, 1, 1),
        "conditioner.embedders.1.model.text_projection": (1280, 1280),
        "conditioner.embedders.1.model.transformer.resblocks.31.mlp.c_fc.weight": (5120, 1280),
        "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": (49408, 768),
    },
}


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_full_size_tables(family: str) -> None:
    shapes = full_size_shapes(family)
    for key, shape in KNOWN[family].items():
        assert shapes.get(key) == shape, key
    info = detect(shapes)
    assert info.family == family
    assert info.unet == FULL[family][0]
    assert info.text == FULL[family][1]
    assert info.vae is not None and info.vae.block_channels == (128, 256, 512, 512)


def test_unknown_layout_names_what_was_found() -> None:
    with pytest.raises(UnknownModel, match=r"no model\.diffusion_model.*lora_unet"):
        detect({"lora_unet_down.weight": (4, 4), "lora_unet_up.weight": (4, 4)})


def test_v_prediction_marker() -> None:
    shapes = dict(full_size_shapes("sd1"))
    shapes["v_pred"] = ()
    assert detect(shapes).prediction == "v"
