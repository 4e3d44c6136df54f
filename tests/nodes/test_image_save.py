"""Animated saves, WebSocket images, loading from the output folder, and folder datasets."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from engine.context import NodeContext, RunControl
from engine.environment import NodeEnvironment as Env
from engine.events import NodeProgress
from engine.registry import NodeRegistry
from nodes.image_save import _output_images
from tests.nodes.conftest import Run

PROMPT = {"1": {"class_type": "SaveAnimatedWEBP", "inputs": {}}}


def frames(n: int = 3) -> torch.Tensor:
    return torch.stack([torch.full((4, 6, 3), i / n) for i in range(n)])


def test_animated_webp_has_every_frame_and_the_prompt(run: Run, env: Env) -> None:
    out = run(
        "SaveAnimatedWEBP",
        images=frames(),
        filename_prefix="anim",
        fps=4.0,
        lossless=True,
        quality=80,
        method="default",
        prompt=PROMPT,
        extra_pnginfo={"workflow": {"nodes": []}},
    )
    [saved] = out["ui"]["images"]
    assert out["ui"]["animated"] == [True] and saved["filename"] == "anim_00001_.webp"
    with Image.open(env.folders.output / saved["filename"]) as img:
        assert img.n_frames == 3 and img.size == (6, 4)
        exif = img.getexif()
    assert exif[0x0110].startswith("prompt:") and exif[0x010F].startswith("workflow:")
    with pytest.raises(ValueError, match="method"):
        run(
            "SaveAnimatedWEBP",
            images=frames(),
            filename_prefix="x",
            fps=4.0,
            lossless=True,
            quality=80,
            method="fast",
            prompt=None,
            extra_pnginfo=None,
        )


def test_animated_png_has_every_frame_and_text(run: Run, env: Env) -> None:
    out = run(
        "SaveAnimatedPNG",
        images=frames(2),
        filename_prefix="apng",
        fps=2.0,
        compress_level=4,
        prompt=PROMPT,
        extra_pnginfo=None,
    )
    [saved] = out["ui"]["images"]
    with Image.open(env.folders.output / saved["filename"]) as img:
        assert img.n_frames == 2 and "prompt" in img.info
    single = run(
        "SaveAnimatedPNG",
        images=frames(1),
        filename_prefix="apng",
        fps=2.0,
        compress_level=4,
        prompt=None,
        extra_pnginfo=None,
    )
    assert single["ui"]["animated"] == [False] and single["ui"]["images"][0]["filename"] == "apng_00002_.png"


def test_save_image_websocket_sends_pngs(registry: NodeRegistry, env: Env) -> None:
    events: list = []
    ctx = NodeContext("p", "1", "1", "SaveImageWebsocket", events.append, RunControl(), env)
    spec = registry.get("SaveImageWebsocket")
    spec.invoke({"images": frames(2), "__context__": ctx})
    progress = [e for e in events if isinstance(e, NodeProgress)]
    assert [(e.value, e.max) for e in progress] == [(1, 2), (2, 2)]
    with Image.open(io.BytesIO(progress[1].preview.data)) as img:
        assert progress[1].preview.format == "PNG" and img.size == (6, 4)
    assert not any(env.folders.output.iterdir())


def test_load_image_output_lists_and_loads_results(run: Run, env: Env) -> None:
    sub = env.folders.output / "sub"
    sub.mkdir()
    Image.new("RGBA", (3, 2), (255, 0, 0, 0)).save(sub / "a.png")
    (env.folders.output / "notes.txt").write_text("not an image")
    assert _output_images(env) == ["sub/a.png [output]"]
    image, mask = run("LoadImageOutput", image="sub/a.png [output]")
    assert image.shape == (1, 2, 3, 3) and torch.all(mask == 1)


def test_load_image_output_refuses_escapes(registry: NodeRegistry) -> None:
    spec = registry.get("LoadImageOutput")
    assert spec.validate({"image": "../../etc/passwd [output]"}) is not True


def test_load_image_set_from_folder(run: Run, env: Env) -> None:
    folder = env.folders.input / "set"
    folder.mkdir()
    Image.new("RGB", (4, 2), (255, 0, 0)).save(folder / "1.png")
    Image.new("RGB", (2, 2), (0, 0, 255)).save(folder / "2.png")
    out = run("LoadImageSetFromFolderNode", folder="set", resize_method="Stretch")
    assert out.shape == (2, 2, 4, 3) and out[1, 0, 0, 2] == 1
    padded = run("LoadImageSetFromFolderNode", folder="set", resize_method="Pad")
    assert padded[1, 0, 0].tolist() == [0, 0, 0] and padded[1, 0, 2, 2] > 0.9  # square centred on black
    with pytest.raises(ValueError, match="resize_method"):
        run("LoadImageSetFromFolderNode", folder="set", resize_method="None")
    with pytest.raises(ValueError, match="folder"):
        run("LoadImageSetFromFolderNode", folder="../..", resize_method="None")
