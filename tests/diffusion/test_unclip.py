from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diffusion.checkpoint import CheckpointError
from diffusion.clip_vision import CLIPVisionOutput, load_clip_vision_state
from diffusion.loader import load_unclip_checkpoint
from diffusion.unclip import MERGE_NOISE, UnclipImage, level_embedding
from tests.diffusion.tiny_image_models import TINY_VISION, tiny_unclip_state, tiny_vision_state, to_openclip
from tests.diffusion.tiny_sampling import sample_latent


@pytest.fixture(scope="module")
def unclip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("unclip") / "sd21-unclip-h.safetensors"
    save_file(tiny_unclip_state(), str(path))
    return path


@pytest.fixture(scope="module")
def loaded(unclip_file: Path, manager):
    return load_unclip_checkpoint(unclip_file, manager)


def test_the_checkpoint_loads_with_its_class_label_augmentor_and_vision_encoder(loaded, unclip_file, manager) -> None:
    checkpoint, vision = loaded
    state = tiny_unclip_state()
    assert checkpoint.info.family == "sd2" and checkpoint.model.prediction == "v"
    unet = checkpoint.model.unet
    assert unet.config.class_embed_type == "projection"
    assert torch.equal(unet.class_embedding.linear_1.weight, state["model.diffusion_model.label_emb.0.0.weight"])
    assert torch.equal(unet.class_embedding.linear_2.bias, state["model.diffusion_model.label_emb.0.2.bias"])
    augmentor = checkpoint.model.extra["noise_augmentor"]
    assert augmentor.dim == TINY_VISION.projection_dim and len(augmentor.alphas_cumprod) == 1000
    assert checkpoint.clip is not None and checkpoint.vae is not None
    direct = load_clip_vision_state(to_openclip(tiny_vision_state(7), TINY_VISION.layers), manager, "direct")
    image = torch.rand(1, 28, 28, 3)
    assert torch.equal(vision.encode(image).image_embeds, direct.encode(image).image_embeds)


def test_a_plain_checkpoint_is_refused(tiny_files, manager) -> None:
    with pytest.raises(CheckpointError, match="not an unCLIP checkpoint"):
        load_unclip_checkpoint(tiny_files["sd2"][0], manager)


def test_a_checkpoint_without_its_encoder_is_refused(tmp_path: Path, manager) -> None:
    state = {k: v for k, v in tiny_unclip_state().items() if not k.startswith("embedder.")}
    save_file(state, str(tmp_path / "no-embedder.safetensors"))
    with pytest.raises(CheckpointError, match="no CLIP vision encoder"):
        load_unclip_checkpoint(tmp_path / "no-embedder.safetensors", manager)


def test_level_embedding_is_the_ldm_sinusoid() -> None:
    emb = level_embedding(250, 8)
    freqs = [math.exp(-math.log(10000) * i / 4) for i in range(4)]
    expected = [math.cos(250 * f) for f in freqs] + [math.sin(250 * f) for f in freqs]
    assert torch.allclose(emb, torch.tensor([expected]), atol=1e-4)


def _output(seed: int) -> CLIPVisionOutput:
    embeds = torch.randn(1, TINY_VISION.projection_dim, generator=torch.Generator().manual_seed(seed))
    return CLIPVisionOutput(embeds, torch.zeros(1, 5, 32), torch.zeros(1, 5, 32))


def test_labels_noise_scale_and_stack(loaded) -> None:
    augmentor = loaded[0].model.extra["noise_augmentor"]
    assert torch.equal(augmentor.label([]), torch.zeros(1, 48))
    one = augmentor.label([UnclipImage(_output(1), 1.0, 0.0)])
    assert one.shape == (1, 48)
    # noise level 0 keeps the embedding; the level's embedding follows it
    assert torch.equal(one[:, :24], _output(1).image_embeds)
    assert torch.allclose(one[:, 24:], level_embedding(0, 24))
    assert torch.equal(augmentor.label([UnclipImage(_output(1), 2.0, 0.0)]), one * 2)
    noisy = augmentor.label([UnclipImage(_output(1), 1.0, 0.9)])
    assert (noisy[:, :24] - _output(1).image_embeds).abs().mean() > 0.3
    assert torch.equal(noisy[:, 24:], level_embedding(augmentor.level(0.9), 24))
    two = augmentor.label([UnclipImage(_output(1), 1.0, 0.0), UnclipImage(_output(2), 1.0, 0.0)])
    assert torch.equal(two[:, 24:], level_embedding(augmentor.level(MERGE_NOISE), 24))
    assert not torch.allclose(two, one, atol=1e-3)
    pair = torch.cat([_output(1).image_embeds, _output(2).image_embeds])
    batch = CLIPVisionOutput(pair, torch.zeros(2, 5, 32), torch.zeros(2, 5, 32))
    assert torch.equal(augmentor.label([UnclipImage(batch, 1.0, 0.0)]), two)  # a batch of images stacks the same
    rows = augmentor.class_labels([{"unclip_conditioning": [UnclipImage(_output(1), 1.0, 0.0)]}, {}], batch=2)
    assert rows.shape == (4, 48) and torch.equal(rows[1], one[0]) and not rows[2:].any()
    with pytest.raises(ValueError, match="24"):
        augmentor.label([UnclipImage(CLIPVisionOutput(torch.zeros(1, 7), torch.zeros(1), torch.zeros(1)), 1.0, 0.0)])


def test_the_augmentation_noise_follows_the_seed(loaded) -> None:
    augmentor = loaded[0].model.extra["noise_augmentor"]
    noisy = [UnclipImage(_output(1), 1.0, 0.5)]
    assert torch.equal(augmentor.label(noisy, seed=5), augmentor.label(noisy, seed=5))
    assert not torch.allclose(augmentor.label(noisy, seed=5), augmentor.label(noisy, seed=6), atol=1e-3)
    # the noise is the seed's (minus 10, as the reference) standard normal draw, mixed in at the level's alpha
    alpha = augmentor.alphas_cumprod[augmentor.level(0.5)]
    normalised = (_output(1).image_embeds - augmentor.mean) / augmentor.std
    noise = torch.randn(1, 24, generator=torch.Generator().manual_seed(5 - 10 & 0xFFFF_FFFF_FFFF_FFFF))
    expected = (alpha.sqrt() * normalised + (1 - alpha).sqrt() * noise) * augmentor.std + augmentor.mean
    assert torch.allclose(augmentor.label(noisy, seed=5)[:, :24], expected, atol=1e-5)
    clean = [UnclipImage(_output(1), 1.0, 0.0)]
    assert torch.equal(augmentor.label(clean, seed=5), augmentor.label(clean, seed=123456))
    # several images are merged with a little noise, which follows the seed as well
    two = [UnclipImage(_output(1), 1.0, 0.0), UnclipImage(_output(2), 1.0, 0.0)]
    assert torch.equal(augmentor.label(two, seed=1), augmentor.label(two, seed=1))
    assert not torch.allclose(augmentor.label(two, seed=1), augmentor.label(two, seed=2), atol=1e-4)
    rows = augmentor.class_labels([{"unclip_conditioning": noisy}], batch=1, seed=6)
    assert torch.equal(rows, augmentor.label(noisy, seed=6))


def test_the_sampler_seed_reaches_the_augmentation(loaded) -> None:
    checkpoint, vision = loaded
    text = checkpoint.clip.encode("a cat").cond
    negative = [[checkpoint.clip.encode("").cond, {}]]
    image = vision.encode(torch.rand(1, 28, 28, 3, generator=torch.Generator().manual_seed(1)))
    latent = {"samples": torch.zeros(1, 4, 8, 8)}

    def run(amount: float, seed: int) -> torch.Tensor:
        positive = [[text, {"unclip_conditioning": [UnclipImage(image, 1.0, amount)]}]]
        # the same initial latent each time: only the augmentation can follow the seed
        return sample_latent(checkpoint.model, positive, negative, seed=seed, latent=latent, add_noise=False)

    assert torch.equal(run(0.8, 1), run(0.8, 1))
    assert not torch.allclose(run(0.8, 1), run(0.8, 2), atol=1e-5)
    assert torch.equal(run(0.0, 1), run(0.0, 2))


def test_image_embeddings_steer_sampling(loaded) -> None:
    checkpoint, vision = loaded
    text = checkpoint.clip.encode("a cat").cond
    empty = checkpoint.clip.encode("").cond
    negative = [[empty, {}]]
    plain = sample_latent(checkpoint.model, [[text, {}]], negative)
    first = vision.encode(torch.rand(1, 28, 28, 3, generator=torch.Generator().manual_seed(1)))
    second = vision.encode(torch.rand(1, 28, 28, 3, generator=torch.Generator().manual_seed(2)))
    one = sample_latent(checkpoint.model, [[text, {"unclip_conditioning": [UnclipImage(first, 1.0, 0.1)]}]], negative)
    both = [UnclipImage(first, 1.0, 0.1), UnclipImage(second, 0.8, 0.1)]
    stacked = sample_latent(checkpoint.model, [[text, {"unclip_conditioning": both}]], negative)
    assert torch.isfinite(one).all() and torch.isfinite(stacked).all()
    assert not torch.allclose(one, plain, atol=1e-4)
    assert not torch.allclose(stacked, one, atol=1e-4)
    assert torch.equal(sample_latent(checkpoint.model, [[text, {}]], negative), plain)
