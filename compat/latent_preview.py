"""`latent_preview` for node packs: the step callback that reports sampling progress with live previews.

`prepare_callback(model, steps)` gives the `(step, x0, x, total_steps)` callback packs hand to samplers: each
call reports the running node's progress with a preview of the denoised estimate, projected to RGB with the
model's latent factors (Loom's cheap previewer, diffusion.preview) and throttled like Loom's own KSampler.
`get_previewer` returns that previewer; TAESD previews have no counterpart in Loom (placeholder).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from compat.host import bound
from compat.surface import complete, resolve
from engine.context import current_context
from engine.events import Preview

MAX_PREVIEW_RESOLUTION = 512


def preview_to_image(latent_image: Any) -> Any:
    """An [H, W, 3] tensor in -1..1 as a PIL image."""
    from PIL import Image

    pixels = ((latent_image.float() + 1.0) / 2.0).clamp(0, 1).mul(255).round().byte().cpu().numpy()
    return Image.fromarray(pixels)


class LatentPreviewer:
    def decode_latent_to_preview(self, x0: Any) -> Any:
        raise NotImplementedError

    def decode_latent_to_preview_image(self, preview_format: str, x0: Any) -> tuple[str, Any, int]:
        return preview_format, self.decode_latent_to_preview(x0), MAX_PREVIEW_RESOLUTION


class Latent2RGBPreviewer(LatentPreviewer):
    def __init__(self, latent_rgb_factors: Sequence[Sequence[float]], latent_rgb_factors_bias: Any = None) -> None:
        self.factors = [list(row) for row in latent_rgb_factors]
        self.bias = list(latent_rgb_factors_bias or (0.0, 0.0, 0.0))

    def decode_latent_to_preview(self, x0: Any) -> Any:
        from PIL import Image

        from diffusion.preview import latent_to_rgb

        return Image.fromarray(latent_to_rgb(x0[0], self.factors, self.bias).numpy())


def _previews_on() -> bool:
    host = bound()
    return getattr(getattr(host, "env", None), "previews", True) if host is not None else True


def get_previewer(device: Any, latent_format: Any) -> LatentPreviewer | None:
    """Loom's RGB-projection previewer for the format, or None when previews are off or it has no factors."""
    factors = getattr(latent_format, "latent_rgb_factors", None)
    if not _previews_on() or factors is None:
        return None
    return Latent2RGBPreviewer(factors, getattr(latent_format, "latent_rgb_factors_bias", None))


def prepare_callback(
    model: Any, steps: int, x0_output_dict: dict[str, Any] | None = None
) -> Callable[[int, Any, Any, int], None]:
    """A sampler step callback reporting the running node's progress (with a throttled preview)."""
    from diffusion.preview import jpeg_preview
    from diffusion.sampling import PreviewThrottle

    loom = model.loom_model() if callable(getattr(type(model), "loom_model", None)) else model
    factors = getattr(loom, "latent_rgb_factors", None)
    bias = getattr(loom, "latent_rgb_bias", (0.0, 0.0, 0.0))
    throttle = PreviewThrottle()
    ctx = current_context()
    show = _previews_on() and factors is not None

    def callback(step: int, x0: Any, x: Any, total_steps: int) -> None:
        if x0_output_dict is not None:
            x0_output_dict["x0"] = x0
        if ctx is None:
            return
        final = step + 1 >= total_steps
        preview = None
        if show and x0 is not None and throttle.ready(final=final):
            preview = Preview("JPEG", jpeg_preview(x0[0], factors, bias))
        ctx.progress(step + 1, total_steps, preview)

    return callback


complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
