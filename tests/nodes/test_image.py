"""Image nodes: loading (alpha -> mask, frames -> batch, validation), saving (counters, subfolders, metadata),
previews, resizing, cropping, batching, image <-> mask."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine.environment import NodeEnvironment
from engine.folders import UnsafePath
from nodes.imageio import read_png_text, read_png_workflow
from tests.nodes.conftest import Run

PROMPT = {"3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["8", 0]}}}
WORKFLOW = {"last_node_id": 9, "nodes": [{"id": 3, "type": "SaveImage", "widgets_values": ["x"]}]}


def ramp(b: int = 1, h: int = 8, w: int = 12) -> torch.Tensor:
    """An IMAGE whose pixels are distinct, exactly representable in 8 bits."""
    values = torch.arange(b * h * w * 3, dtype=torch.float32).reshape(b, h, w, 3) % 256
    return values / 255.0


def save_rgba(path, alpha: np.ndarray) -> None:
    h, w = alpha.shape
    rgba = np.zeros((h, w, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = alpha
    Image.fromarray(rgba, "RGBA").save(path)


# --- SaveImage ---------------------------------------------------------------------------------------------


def test_save_image_writes_numbered_pngs_and_reports_them(run: Run, env: NodeEnvironment) -> None:
    out = run("SaveImage", images=ramp(b=2), filename_prefix="Loom", prompt=None, extra_pnginfo=None)
    assert out["ui"]["images"] == [
        {"filename": "Loom_00001_.png", "subfolder": "", "type": "output"},
        {"filename": "Loom_00002_.png", "subfolder": "", "type": "output"},
    ]
    assert out["result"] == ()
    with Image.open(env.folders.output / "Loom_00002_.png") as img:
        assert img.size == (12, 8) and img.mode == "RGB"


def test_save_image_counters_never_overwrite(run: Run, env: NodeEnvironment) -> None:
    existing = env.folders.output / "Loom_00007_.png"
    existing.write_bytes(b"keep me")
    (env.folders.output / "Loom_other_00099_.png").write_bytes(b"another prefix")
    first = run("SaveImage", images=ramp(), filename_prefix="Loom", prompt=None, extra_pnginfo=None)
    second = run("SaveImage", images=ramp(), filename_prefix="Loom", prompt=None, extra_pnginfo=None)
    assert first["ui"]["images"][0]["filename"] == "Loom_00008_.png"
    assert second["ui"]["images"][0]["filename"] == "Loom_00009_.png"
    assert existing.read_bytes() == b"keep me"


def test_save_image_prefix_with_subfolders(run: Run, env: NodeEnvironment) -> None:
    out = run("SaveImage", images=ramp(), filename_prefix="sub/deeper/name", prompt=None, extra_pnginfo=None)
    assert out["ui"]["images"] == [{"filename": "name_00001_.png", "subfolder": "sub/deeper", "type": "output"}]
    assert (env.folders.output / "sub" / "deeper" / "name_00001_.png").is_file()


@pytest.mark.parametrize("prefix", ["../escape", "sub/../../escape", "/tmp/abs", "sub/"])
def test_save_image_refuses_prefixes_leaving_the_output_folder(run: Run, env: NodeEnvironment, prefix: str) -> None:
    with pytest.raises(UnsafePath):
        run("SaveImage", images=ramp(), filename_prefix=prefix, prompt=None, extra_pnginfo=None)
    assert not list(env.folders.base.parent.glob("**/escape*"))


def test_save_image_expands_variables(run: Run) -> None:
    out = run(
        "SaveImage",
        images=ramp(h=8, w=12),
        filename_prefix="img_%width%x%height%_%batch_num%",
        prompt=None,
        extra_pnginfo=None,
    )
    assert out["ui"]["images"][0]["filename"] == "img_12x8_0_00001_.png"


def test_png_metadata_round_trip(run: Run, env: NodeEnvironment) -> None:
    out = run(
        "SaveImage",
        images=ramp(),
        filename_prefix="meta",
        prompt=PROMPT,
        extra_pnginfo={"workflow": WORKFLOW, "extra": [1, 2]},
    )
    path = env.folders.output / out["ui"]["images"][0]["filename"]
    assert read_png_workflow(path) == {"prompt": PROMPT, "workflow": WORKFLOW}
    assert read_png_workflow(path.read_bytes()) == {"prompt": PROMPT, "workflow": WORKFLOW}
    assert json.loads(read_png_text(path)["extra"]) == [1, 2]  # each extra_pnginfo key is its own chunk
    with Image.open(path) as img:  # other readers see the same chunks
        img.load()
        assert json.loads(img.text["prompt"]) == PROMPT


def test_saved_pixels_load_back_exactly(run: Run, env: NodeEnvironment) -> None:
    image = ramp()
    run("SaveImage", images=image, filename_prefix="px", prompt=None, extra_pnginfo=None)
    (env.folders.input / "px.png").write_bytes((env.folders.output / "px_00001_.png").read_bytes())
    loaded, _ = run("LoadImage", image="px.png")
    assert torch.allclose(loaded, image, atol=1e-6)


def test_preview_image_goes_to_temp(run: Run, env: NodeEnvironment) -> None:
    out = run("PreviewImage", images=ramp(), prompt=PROMPT, extra_pnginfo=None)
    entry = out["ui"]["images"][0]
    assert entry["type"] == "temp" and entry["subfolder"] == ""
    assert (env.folders.temp / entry["filename"]).is_file()
    assert not list(env.folders.output.iterdir())


# --- LoadImage ---------------------------------------------------------------------------------------------


def test_load_image_alpha_becomes_inverted_mask(run: Run, env: NodeEnvironment) -> None:
    alpha = np.zeros((4, 6), dtype=np.uint8)
    alpha[:, 3:] = 255
    alpha[0, 0] = 51
    save_rgba(env.folders.input / "rgba.png", alpha)
    image, mask = run("LoadImage", image="rgba.png")
    assert image.shape == (1, 4, 6, 3) and image.dtype == torch.float32
    assert torch.allclose(image[0, 0, 0], torch.tensor([200 / 255, 0, 0]))
    assert mask.shape == (1, 4, 6)
    assert mask[0, :, 3:].eq(0).all() and mask[0, 1:, :3].eq(1).all()
    assert mask[0, 0, 0].item() == pytest.approx(0.8)


def test_load_image_without_alpha_gives_an_empty_mask(run: Run, env: NodeEnvironment) -> None:
    Image.new("RGB", (10, 7), (0, 255, 0)).save(env.folders.input / "rgb.jpg")
    image, mask = run("LoadImage", image="rgb.jpg")
    assert image.shape == (1, 7, 10, 3)
    assert mask.shape == (1, 64, 64) and not mask.any()


def test_load_image_palette_transparency(run: Run, env: NodeEnvironment) -> None:
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(0, (0, 0, 2, 4))
    img.save(env.folders.input / "pal.png", transparency=0)
    _, mask = run("LoadImage", image="pal.png")
    assert mask[0, :, :2].eq(1).all() and mask[0, :, 2:].eq(0).all()


def test_load_image_keeps_16_bit_grey_precision(run: Run, env: NodeEnvironment) -> None:
    grey = np.array([[0, 1000, 65535]], dtype=np.uint16)
    Image.fromarray(grey).save(env.folders.input / "deep.png")
    image, _ = run("LoadImage", image="deep.png")
    assert image.shape == (1, 1, 3, 3)
    assert torch.allclose(image[0, 0, :, 0], torch.tensor([0.0, 1000 / 65535, 1.0]))
    assert torch.equal(image[..., 0], image[..., 2])
    assert run("LoadImageMask", image="deep.png", channel="green")[0, 0, 2] == 1.0


def test_load_image_refuses_a_file_that_is_no_image(run: Run, env: NodeEnvironment) -> None:
    (env.folders.input / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"cannot read 'broken\.png' as an image"):
        run("LoadImage", image="broken.png")


def test_load_image_frames_become_a_batch(run: Run, env: NodeEnvironment) -> None:
    frames = [Image.new("RGB", (5, 3), (i * 80, 0, 0)) for i in range(3)]
    frames[0].save(env.folders.input / "anim.gif", save_all=True, append_images=frames[1:])
    image, mask = run("LoadImage", image="anim.gif")
    assert image.shape == (3, 3, 5, 3) and mask.shape[0] == 3
    assert image[2, 0, 0, 0] > image[1, 0, 0, 0] > image[0, 0, 0, 0]


def test_load_image_from_a_subfolder_and_from_output(run: Run, env: NodeEnvironment) -> None:
    (env.folders.input / "up").mkdir()
    Image.new("RGB", (3, 2)).save(env.folders.input / "up" / "a.png")
    Image.new("RGB", (4, 2)).save(env.folders.output / "b.png")
    assert run("LoadImage", image="up/a.png")[0].shape == (1, 2, 3, 3)
    assert run("LoadImage", image="b.png [output]")[0].shape == (1, 2, 4, 3)


def test_load_image_lists_input_images_with_upload(registry, env: NodeEnvironment) -> None:
    for name in ("b.png", "a.jpg", "notes.txt"):
        (env.folders.input / name).write_bytes(b"")
    (env.folders.input / "dir.png").mkdir()
    schema = registry.get("LoadImage").schema()
    choices, options = schema["input"]["required"]["image"]
    assert choices == ["a.jpg", "b.png"]
    assert options["image_upload"] is True
    assert schema["output"] == ["IMAGE", "MASK"]


def test_load_image_validation_names_the_missing_file(registry, env: NodeEnvironment) -> None:
    spec = registry.get("LoadImage")
    assert spec.validate_inputs == frozenset({"image"})
    message = spec.validate({"image": "missing.png"})
    assert isinstance(message, str) and "Invalid image file" in message and "missing.png" in message
    assert "not allowed" in spec.validate({"image": "../../etc/passwd"})
    assert "expected a file name" in spec.validate({"image": 5})
    Image.new("RGB", (2, 2)).save(env.folders.input / "here.png")
    assert spec.validate({"image": "here.png"}) is True


def test_load_image_fingerprint_follows_content(registry, env: NodeEnvironment) -> None:
    spec = registry.get("LoadImage")
    path = env.folders.input / "x.png"
    Image.new("RGB", (2, 2), (1, 2, 3)).save(path)
    first = spec.fingerprint({"image": "x.png"})
    assert spec.fingerprint({"image": "x.png"}) == first
    Image.new("RGB", (2, 2), (9, 9, 9)).save(path)
    assert spec.fingerprint({"image": "x.png"}) != first


@pytest.mark.parametrize(("channel", "expected"), [("red", 200 / 255), ("green", 0.0), ("alpha", 0.8)])
def test_load_image_mask_channels(run: Run, env: NodeEnvironment, channel: str, expected: float) -> None:
    save_rgba(env.folders.input / "m.png", np.full((3, 3), 51, dtype=np.uint8))
    mask = run("LoadImageMask", image="m.png", channel=channel)
    assert mask.shape == (1, 3, 3)
    assert mask[0, 0, 0].item() == pytest.approx(expected)


def test_load_image_mask_without_alpha_is_empty(run: Run, env: NodeEnvironment) -> None:
    Image.new("RGB", (3, 3), (255, 255, 255)).save(env.folders.input / "rgb.png")
    assert run("LoadImageMask", image="rgb.png", channel="alpha").shape == (1, 64, 64)
    assert run("LoadImageMask", image="rgb.png", channel="blue").eq(1).all()


# --- transforms --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"])
def test_image_scale_methods(run: Run, method: str) -> None:
    out = run("ImageScale", image=ramp(b=2), upscale_method=method, width=20, height=10, crop="disabled")
    assert out.shape == (2, 10, 20, 3)
    assert out.min() >= 0 and out.max() <= 1


def test_image_scale_zero_side_and_center_crop(run: Run) -> None:
    image = ramp(h=8, w=12)
    assert run("ImageScale", image=image, upscale_method="bilinear", width=0, height=16, crop="disabled").shape == (
        1,
        16,
        24,
        3,
    )
    assert run("ImageScale", image=image, upscale_method="bilinear", width=0, height=0, crop="disabled") is image
    square = run("ImageScale", image=image, upscale_method="nearest-exact", width=8, height=8, crop="center")
    assert torch.equal(square, image[:, :, 2:10])


def test_image_scale_lanczos_keeps_a_flat_image_flat(run: Run) -> None:
    flat = torch.full((1, 6, 6, 3), 0.25)
    out = run("ImageScale", image=flat, upscale_method="lanczos", width=13, height=9, crop="disabled")
    assert torch.allclose(out, flat.new_full((1, 9, 13, 3), 0.25), atol=1e-5)


def test_image_scale_by_and_to_total_pixels(run: Run) -> None:
    assert run("ImageScaleBy", image=ramp(h=8, w=12), upscale_method="area", scale_by=0.5).shape == (1, 4, 6, 3)
    out = run("ImageScaleToTotalPixels", image=ramp(h=8, w=16), upscale_method="bilinear", megapixels=0.125)
    assert out.shape == (1, 256, 512, 3)  # 131072 pixels, aspect 2:1 kept


def test_invert(run: Run) -> None:
    image = ramp()
    assert torch.allclose(run("ImageInvert", image=image), 1 - image)


def test_batch_resizes_the_second_image(run: Run) -> None:
    a, b = ramp(b=2, h=8, w=12), torch.ones(1, 4, 6, 3)
    out = run("ImageBatch", image1=a, image2=b)
    assert out.shape == (3, 8, 12, 3)
    assert torch.equal(out[:2], a) and torch.allclose(out[2], torch.ones(8, 12, 3))
    with pytest.raises(ValueError, match="channels"):
        run("ImageBatch", image1=a, image2=torch.ones(1, 8, 12, 4))


def test_crop(run: Run) -> None:
    image = ramp(h=8, w=12)
    assert torch.equal(run("ImageCrop", image=image, width=4, height=3, x=5, y=2), image[:, 2:5, 5:9])
    edge = run("ImageCrop", image=image, width=512, height=512, x=100, y=100)
    assert edge.shape == (1, 1, 1, 3) and torch.equal(edge, image[:, 7:, 11:])


def test_image_to_mask_and_back(run: Run) -> None:
    image = ramp()
    mask = run("ImageToMask", image=image, channel="green")
    assert torch.equal(mask, image[..., 1])
    back = run("MaskToImage", mask=mask)
    assert back.shape == image.shape and torch.equal(back[..., 2], image[..., 1])
    with pytest.raises(ValueError, match="no alpha channel"):
        run("ImageToMask", image=image, channel="alpha")
