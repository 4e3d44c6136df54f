"""`comfy.latent_formats` for node packs: how a model family's latents are scaled and previewed.

The families Loom runs (SD 1.x, SD 2.x, SDXL) take their numbers from Loom's own family configs
(diffusion/configs); formats of families Loom cannot run exist by name only (making one fails).
"""

from __future__ import annotations

from typing import Any

from compat import placeholder
from compat.surface import complete, resolve


class LatentFormat:
    """`process_in` scales VAE latents into the model's space, `process_out` back."""

    scale_factor: float = 1.0
    latent_channels: int = 4
    latent_dimensions: int = 2
    latent_rgb_factors: list[list[float]] | None = None
    latent_rgb_factors_bias: list[float] | None = None
    taesd_decoder_name: str | None = None

    def process_in(self, latent: Any) -> Any:
        return latent * self.scale_factor

    def process_out(self, latent: Any) -> Any:
        return latent / self.scale_factor


def _family(name: str, family: str, taesd: str) -> type[LatentFormat]:
    from diffusion.detect import family_defaults

    config = family_defaults(family)
    return type(
        name,
        (LatentFormat,),
        {
            "scale_factor": float(config["vae_scaling_factor"]),
            "latent_rgb_factors": [list(row) for row in config["latent_rgb_factors"]],
            "latent_rgb_factors_bias": list(config.get("latent_rgb_bias", (0.0, 0.0, 0.0))),
            "taesd_decoder_name": taesd,
            "__module__": __name__,
        },
    )


SD15 = _family("SD15", "sd1", "taesd_decoder")
SDXL = _family("SDXL", "sdxl", "taesdxl_decoder")

for _name in ("SD3", "Flux", "SD_X4", "SC_Prior", "SC_B", "StableAudio1", "Mochi", "LTXV", "HunyuanVideo", "Wan21"):
    globals()[_name] = placeholder.klass(f"comfy.latent_formats.{_name}", (LatentFormat,))

complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
