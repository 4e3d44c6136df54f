"""VAE nodes: latents to images and back, whole or tiled, and encoding for inpainting."""

from __future__ import annotations

from typing import Any

from engine.native import Int, Socket, node


def _vae(vae: Any) -> Any:
    if vae is None:
        raise ValueError("vae: the checkpoint has no VAE; load one with VAELoader")
    return vae


def _samples(samples: Any) -> Any:
    latent = samples.get("samples") if isinstance(samples, dict) else None
    if latent is None or getattr(latent, "ndim", 0) != 4:
        raise ValueError("samples: expected a LATENT with 'samples' of shape [B, C, H, W]")
    return latent


@node(category="latent", outputs=["IMAGE"], display_name="VAE Decode")
def VAEDecode(samples: Any = Socket("LATENT"), vae: Any = Socket("VAE")) -> Any:
    """Decode latents to images."""
    return _vae(vae).decode(_samples(samples))


@node(category="latent", outputs=["LATENT"], display_name="VAE Encode")
def VAEEncode(pixels: Any = Socket("IMAGE"), vae: Any = Socket("VAE")) -> dict[str, Any]:
    """Encode images to latents (cropped to multiples of 8 pixels)."""
    return {"samples": _vae(vae).encode(pixels)}


@node(category="_for_testing", outputs=["IMAGE"], display_name="VAE Decode (Tiled)")
def VAEDecodeTiled(
    samples: Any = Socket("LATENT"),
    vae: Any = Socket("VAE"),
    tile_size: int = Int(512, min=64, max=4096, step=32),
    overlap: int = Int(64, min=0, max=4096, step=32),
    temporal_size: int = Int(64, min=8, max=4096, step=4),
    temporal_overlap: int = Int(8, min=4, max=4096, step=4),
) -> Any:
    """Decode in overlapping tiles (sizes in pixels) so large images fit in memory. The temporal sizes tile the
    frames of video latents; image latents have no time axis, so they do not apply."""
    v = _vae(vae)
    f = v.downscale
    return v.decode_tiled(_samples(samples), tile=max(8, tile_size // f), overlap=overlap // f)


@node(category="_for_testing", outputs=["LATENT"], display_name="VAE Encode (Tiled)")
def VAEEncodeTiled(
    pixels: Any = Socket("IMAGE"),
    vae: Any = Socket("VAE"),
    tile_size: int = Int(512, min=64, max=4096, step=64),
    overlap: int = Int(64, min=0, max=4096, step=32),
    temporal_size: int = Int(64, min=8, max=4096, step=4),
    temporal_overlap: int = Int(8, min=4, max=4096, step=4),
) -> dict[str, Any]:
    """Encode in overlapping tiles (sizes in pixels); the temporal sizes tile video frames, as in VAEDecodeTiled."""
    return {"samples": _vae(vae).encode_tiled(pixels, tile=tile_size, overlap=overlap)}


@node(category="latent/inpaint", outputs=["LATENT"], display_name="VAE Encode (for Inpainting)")
def VAEEncodeForInpaint(
    pixels: Any = Socket("IMAGE"),
    vae: Any = Socket("VAE"),
    mask: Any = Socket("MASK"),
    grow_mask_by: int = Int(6, min=0, max=64, step=1),
) -> dict[str, Any]:
    """Encode with the masked area greyed out, and attach the (grown) mask as the latent's noise_mask."""
    import torch
    import torch.nn.functional as F

    from diffusion.vae import crop_to_multiple

    v = _vae(vae)
    f = v.downscale
    images = crop_to_multiple(pixels, f)
    h, w = images.shape[1], images.shape[2]
    m = mask.float().reshape(-1, 1, mask.shape[-2], mask.shape[-1])
    m = F.interpolate(m, size=(pixels.shape[1], pixels.shape[2]), mode="bilinear", align_corners=False)
    top, left = (pixels.shape[1] - h) // 2, (pixels.shape[2] - w) // 2
    m = m[:, :, top : top + h, left : left + w].round()
    if grow_mask_by > 0:
        k = grow_mask_by
        m = F.max_pool2d(m, kernel_size=2 * k + 1, stride=1, padding=k)
    keep = (1 - m.round()).permute(0, 2, 3, 1)
    if keep.shape[0] != images.shape[0]:
        keep = keep[:1].expand(images.shape[0], -1, -1, -1)
    greyed = (images[..., :3] - 0.5) * keep + 0.5
    return {"samples": v.encode(greyed), "noise_mask": torch.clamp(m, 0, 1)}
