import pytest
import torch
import torch.nn.functional as F

from diffusion.vae import crop_to_multiple, tiled


def test_tiles_blend_back_to_the_whole() -> None:
    x = torch.randn(1, 3, 21, 17)
    assert torch.allclose(tiled(x, lambda t: t, tile=8, overlap=3, scale=1, out_channels=3), x, atol=1e-6)
    up = tiled(x, lambda t: F.interpolate(t, scale_factor=2, mode="nearest"), 8, 2, scale=2, out_channels=3)
    assert torch.allclose(up, F.interpolate(x, scale_factor=2, mode="nearest"), atol=1e-6)


def test_tiled_decode_with_one_tile_equals_decode(sd1) -> None:
    z = torch.randn(1, 4, 6, 6)
    assert torch.allclose(sd1.vae.decode_tiled(z, tile=64, overlap=8), sd1.vae.decode(z), atol=1e-5)


def test_encode_decode_shapes(sd1) -> None:
    images = torch.rand(2, 10, 13, 4)
    latents = sd1.vae.encode(images)
    assert latents.shape == (2, 4, 5, 6)
    assert sd1.vae.decode(latents).shape == (2, 10, 12, 3)


def test_crop_to_multiple() -> None:
    assert crop_to_multiple(torch.zeros(1, 17, 9, 3), 8).shape == (1, 16, 8, 3)
    with pytest.raises(ValueError, match="smaller"):
        crop_to_multiple(torch.zeros(1, 4, 4, 3), 8)


def test_decode_tiles_only_when_the_estimate_exceeds_free_memory(sd1, monkeypatch: pytest.MonkeyPatch) -> None:
    z = torch.randn(1, 4, 72, 72)
    vae = sd1.vae
    assert vae.decode_bytes(72, 72) == 3 * vae.module.config.block_out_channels[1] * 72 * 72 * vae.downscale**2 * 4
    whole = vae.decode(z)
    monkeypatch.setattr(type(vae.manager), "free_bytes", lambda self: vae.decode_bytes(72, 72) - 1)
    tiled_decode = vae.decode(z)
    torch.testing.assert_close(tiled_decode, vae.decode_tiled(z), rtol=0, atol=0)
    assert not torch.equal(tiled_decode, whole), "a 72x72 latent spans two 64-wide tiles with seams blended"
    monkeypatch.setattr(type(vae.manager), "free_bytes", lambda self: vae.decode_bytes(72, 72))
    torch.testing.assert_close(vae.decode(z), whole, rtol=0, atol=0)


def test_free_bytes_on_the_cpu_is_available_ram(sd1) -> None:
    assert sd1.vae.manager.free_bytes() > 0
