"""Loaders whose model families Loom does not run yet, declared with the reference's schemas so front ends that
assume them (the stock front end's model library maps each model folder to one of these) and workflows naming
them load; running one fails with a clear error naming what to use instead.

Each is replaced here by the real loader when its model family lands (image-to-video models).
"""

from __future__ import annotations

from typing import Any, NoReturn

from engine.native import Combo, Out, node
from nodes.shared import model_files


class LoaderNotAvailable(RuntimeError):
    """A loader whose model family Loom cannot load yet."""


def _not_yet(node_name: str, what: str, instead: str) -> NoReturn:
    raise LoaderNotAvailable(f"{node_name}: Loom cannot load {what} yet; {instead}")


@node(
    category="loaders/video_models",
    outputs=[Out("MODEL"), Out("CLIP_VISION"), Out("VAE")],
    display_name="Image Only Checkpoint Loader (img2vid model)",
    deprecated=True,
)
def ImageOnlyCheckpointLoader(ckpt_name: str = Combo(model_files("checkpoints"))) -> tuple[Any, Any, Any]:
    """An image-to-video checkpoint (model, CLIP vision encoder, VAE): not supported yet."""
    _not_yet(
        "ImageOnlyCheckpointLoader",
        f"image-to-video checkpoints such as {ckpt_name!r}",
        "text-to-image checkpoints load with CheckpointLoaderSimple",
    )
