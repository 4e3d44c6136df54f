"""Latent nodes: shapes and values of each operation, resize/crop/flip/rotate semantics, `.latent` files."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engine.environment import NodeEnvironment
from nodes.latent import SD_SCALE_FACTOR
from tests.nodes.conftest import Run


def latent(b: int = 1, c: int = 4, h: int = 8, w: int = 8, seed: int = 0) -> dict:
    return {"samples": torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))}


def grid(h: int, w: int) -> dict:
    """One-channel-repeated latent whose values are their position, to follow where pixels go."""
    return {"samples": torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w).repeat(1, 4, 1, 1)}


def test_empty_latent_is_zero_with_pixel_size_over_8(run: Run) -> None:
    out = run("EmptyLatentImage", width=384, height=512, batch_size=2)
    assert out["samples"].shape == (2, 4, 64, 48)
    assert out["samples"].dtype == torch.float32
    assert not out["samples"].any()


def test_latent_upscale_to_pixel_size(run: Run) -> None:
    src = latent(h=8, w=8)
    src["batch_index"] = [3]
    out = run("LatentUpscale", samples=src, upscale_method="nearest-exact", width=128, height=64, crop="disabled")
    assert out["samples"].shape == (1, 4, 8, 16)
    assert out["batch_index"] == [3]  # other keys pass through
    assert torch.equal(out["samples"][..., ::2], src["samples"])  # nearest doubling repeats each column


def test_latent_upscale_zero_side_keeps_aspect_and_both_zero_is_unchanged(run: Run) -> None:
    src = latent(h=8, w=16)
    out = run("LatentUpscale", samples=src, upscale_method="bilinear", width=0, height=128, crop="disabled")
    assert out["samples"].shape == (1, 4, 16, 32)
    same = run("LatentUpscale", samples=src, upscale_method="bilinear", width=0, height=0, crop="disabled")
    assert torch.equal(same["samples"], src["samples"])


def test_latent_upscale_center_crop_keeps_the_middle(run: Run) -> None:
    src = grid(4, 8)
    out = run("LatentUpscale", samples=src, upscale_method="nearest-exact", width=64, height=64, crop="center")
    # A 4x8 latent cropped to square keeps columns 2..5, then is resized to 8x8 (each kept column doubled).
    assert torch.equal(out["samples"][0, 0, 0, ::2], torch.tensor([2.0, 3.0, 4.0, 5.0]))


@pytest.mark.parametrize("method", ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"])
def test_every_latent_method_resizes(run: Run, method: str) -> None:
    out = run("LatentUpscale", samples=latent(b=2), upscale_method=method, width=96, height=80, crop="disabled")
    assert out["samples"].shape == (2, 4, 10, 12)
    assert torch.isfinite(out["samples"]).all()


def test_latent_upscale_by(run: Run) -> None:
    out = run("LatentUpscaleBy", samples=latent(h=8, w=12), upscale_method="bislerp", scale_by=1.5)
    assert out["samples"].shape == (1, 4, 12, 18)


def test_set_latent_noise_mask(run: Run) -> None:
    src = latent()
    mask = torch.ones(2, 64, 64)
    out = run("SetLatentNoiseMask", samples=src, mask=mask)
    assert out["noise_mask"].shape == (2, 1, 64, 64)
    assert out["samples"] is src["samples"]
    assert "noise_mask" not in src  # the input dict is not changed


def test_add_subtract_multiply(run: Run) -> None:
    a, b = latent(seed=1), latent(seed=2)
    assert torch.allclose(run("LatentAdd", samples1=a, samples2=b)["samples"], a["samples"] + b["samples"])
    assert torch.allclose(run("LatentSubtract", samples1=a, samples2=b)["samples"], a["samples"] - b["samples"])
    assert torch.allclose(run("LatentMultiply", samples=a, multiplier=-2.5)["samples"], a["samples"] * -2.5)


def test_arithmetic_resizes_and_rebatches_the_second_operand(run: Run) -> None:
    a = {"samples": torch.zeros(3, 4, 8, 8)}
    b = {"samples": torch.ones(1, 4, 4, 4)}
    out = run("LatentAdd", samples1=a, samples2=b)["samples"]
    assert out.shape == (3, 4, 8, 8)
    assert torch.allclose(out, torch.ones_like(out))


def test_arithmetic_refuses_different_channel_counts(run: Run) -> None:
    with pytest.raises(ValueError, match="channels differ"):
        run("LatentAdd", samples1=latent(c=4), samples2=latent(c=16))


def test_interpolate_ends_and_magnitude(run: Run) -> None:
    a, b = latent(seed=1), latent(seed=2)
    assert torch.allclose(run("LatentInterpolate", samples1=a, samples2=b, ratio=1.0)["samples"], a["samples"])
    assert torch.allclose(
        run("LatentInterpolate", samples1=a, samples2=b, ratio=0.0)["samples"], b["samples"], atol=1e-6
    )
    mid = run("LatentInterpolate", samples1=a, samples2=b, ratio=0.5)["samples"]
    expected_norm = (a["samples"].norm(dim=1) + b["samples"].norm(dim=1)) / 2
    assert torch.allclose(mid.norm(dim=1), expected_norm, atol=1e-5)


def test_blend(run: Run) -> None:
    a, b = latent(seed=1), latent(seed=2)
    out = run("LatentBlend", samples1=a, samples2=b, blend_factor=0.25)["samples"]
    assert torch.allclose(out, a["samples"] * 0.25 + b["samples"] * 0.75)


def test_composite_pastes_at_pixel_position(run: Run) -> None:
    to = {"samples": torch.zeros(1, 4, 8, 8)}
    src = {"samples": torch.ones(1, 4, 4, 4)}
    out = run("LatentComposite", samples_to=to, samples_from=src, x=16, y=8, feather=0)["samples"]
    assert out[0, 0, 1:5, 2:6].eq(1).all()
    assert out.sum() == 4 * 16
    assert not to["samples"].any()  # the input is not changed


def test_composite_clips_at_the_edge(run: Run) -> None:
    to = {"samples": torch.zeros(1, 4, 8, 8)}
    src = {"samples": torch.ones(1, 4, 4, 4)}
    out = run("LatentComposite", samples_to=to, samples_from=src, x=48, y=48, feather=0)["samples"]
    assert out[0, 0, 6:, 6:].eq(1).all() and out.sum() == 4 * 4


def test_composite_feathers_inner_edges_only(run: Run) -> None:
    to = {"samples": torch.zeros(1, 4, 8, 8)}
    src = {"samples": torch.ones(1, 4, 4, 4)}
    out = run("LatentComposite", samples_to=to, samples_from=src, x=0, y=16, feather=16)["samples"][0, 0]
    # Feather of 2 latent pixels: the top edge (inside the target) fades in, the left edge (at the border) does not.
    assert torch.allclose(out[2, 0], torch.tensor(0.5))
    assert torch.allclose(out[3, 0], torch.tensor(1.0))
    assert torch.allclose(out[3, 2], torch.tensor(1.0))
    assert torch.allclose(out[3, 3], torch.tensor(0.5))  # right edge lies inside the target


def test_composite_feather_wider_than_the_source(run: Run) -> None:
    to = {"samples": torch.zeros(1, 4, 16, 16)}
    src = {"samples": torch.ones(1, 4, 2, 2)}
    out = run("LatentComposite", samples_to=to, samples_from=src, x=32, y=32, feather=128)["samples"][0, 0]
    patch = out[4:6, 4:6]
    assert (patch > 0).all() and (patch < 1).all()
    assert out.sum() == patch.sum()  # nothing lands outside the pasted area


def test_from_batch_selects_and_records_indices(run: Run) -> None:
    src = latent(b=4)
    src["noise_mask"] = torch.rand(4, 1, 64, 64)
    out = run("LatentFromBatch", samples=src, batch_index=1, length=2)
    assert torch.equal(out["samples"], src["samples"][1:3])
    assert torch.equal(out["noise_mask"], src["noise_mask"][1:3])
    assert out["batch_index"] == [1, 2]
    again = run("LatentFromBatch", samples=out, batch_index=1, length=5)
    assert again["batch_index"] == [2] and again["samples"].shape[0] == 1
    clamped = run("LatentFromBatch", samples=src, batch_index=10, length=3)
    assert clamped["batch_index"] == [3]


def test_repeat_batch(run: Run) -> None:
    src = latent(b=2)
    out = run("RepeatLatentBatch", samples=src, amount=3)
    assert out["samples"].shape[0] == 6
    assert torch.equal(out["samples"][4:], src["samples"])
    src["batch_index"] = [4, 5]
    assert run("RepeatLatentBatch", samples=src, amount=3)["batch_index"] == [4, 5, 6, 7, 8, 9]


def test_crop_in_pixels(run: Run) -> None:
    src = grid(16, 16)
    out = run("LatentCrop", samples=src, width=64, height=80, x=16, y=24)["samples"]
    assert out.shape == (1, 4, 10, 8)
    assert out[0, 0, 0, 0] == 3 * 16 + 2
    # The origin is pulled in so that 8 latent pixels (64 px) remain.
    late = run("LatentCrop", samples=src, width=64, height=64, x=120, y=0)["samples"]
    assert late.shape == (1, 4, 8, 8) and late[0, 0, 0, 0] == 8


def test_crop_applies_to_the_noise_mask(run: Run) -> None:
    src = grid(16, 16)
    src["noise_mask"] = torch.zeros(1, 1, 128, 128)
    src["noise_mask"][..., 16:32, 16:24] = 1
    out = run("LatentCrop", samples=src, width=64, height=64, x=16, y=16)
    assert out["noise_mask"].shape == (1, 1, 64, 64)
    assert out["noise_mask"][..., :16, :8].eq(1).all() and out["noise_mask"].sum() == 16 * 8


def test_flip(run: Run) -> None:
    src = grid(2, 3)
    vertical = run("LatentFlip", samples=src, flip_method="x-axis: vertically")["samples"][0, 0]
    assert vertical.tolist() == [[3, 4, 5], [0, 1, 2]]
    horizontal = run("LatentFlip", samples=src, flip_method="y-axis: horizontally")["samples"][0, 0]
    assert horizontal.tolist() == [[2, 1, 0], [5, 4, 3]]


@pytest.mark.parametrize(
    ("rotation", "expected"),
    [
        ("none", [[0, 1], [2, 3]]),
        ("90 degrees", [[2, 0], [3, 1]]),
        ("180 degrees", [[3, 2], [1, 0]]),
        ("270 degrees", [[1, 3], [0, 2]]),
    ],
)
def test_rotate_clockwise(run: Run, rotation: str, expected: list) -> None:
    src = grid(2, 2)
    src["noise_mask"] = src["samples"][:, :1].clone()
    out = run("LatentRotate", samples=src, rotation=rotation)
    assert out["samples"][0, 0].tolist() == expected
    assert out["noise_mask"][0, 0].tolist() == expected


def test_rotate_swaps_sides(run: Run) -> None:
    assert run("LatentRotate", samples=grid(2, 3), rotation="90 degrees")["samples"].shape == (1, 4, 3, 2)


def test_save_and_load_latent_round_trip(run: Run, env: NodeEnvironment) -> None:
    src = latent(b=2, seed=7)
    ui = run(
        "SaveLatent",
        samples=src,
        filename_prefix="latents/test",
        prompt={"1": {"class_type": "X"}},
        extra_pnginfo={"workflow": {"nodes": []}},
    )["ui"]
    entry = ui["latents"][0]
    assert entry == {"filename": "test_00001_.latent", "subfolder": "latents", "type": "output"}
    path = env.folders.output / "latents" / "test_00001_.latent"
    with safe_open(str(path), framework="pt") as fh:
        assert set(fh.keys()) == {"latent_tensor", "latent_format_version_0"}
        assert fh.metadata()["prompt"] == '{"1": {"class_type": "X"}}'
        assert fh.metadata()["workflow"] == '{"nodes": []}'
    second = run("SaveLatent", samples=src, filename_prefix="latents/test", prompt=None, extra_pnginfo=None)
    assert second["ui"]["latents"][0]["filename"] == "test_00002_.latent"

    shutil.copy(path, env.folders.input / "copied.latent")
    assert run("LoadLatent", latent="copied.latent")["samples"].equal(src["samples"])
    from_output = run("LoadLatent", latent="latents/test_00001_.latent [output]")
    assert from_output["samples"].equal(src["samples"])


def test_load_latent_lists_and_validates_files(registry, env: NodeEnvironment) -> None:
    (env.folders.input / "a.latent").write_bytes(b"")
    (env.folders.input / "b.png").write_bytes(b"")
    spec = registry.get("LoadLatent")
    assert spec.current_inputs()[0].choices == ("a.latent",)
    message = spec.validate({"latent": "gone.latent"})
    assert isinstance(message, str) and "gone.latent" in message
    assert spec.validate({"latent": "a.latent"}) is True
    assert "not allowed" in spec.validate({"latent": "../x.latent"})


def test_load_latent_scales_files_of_the_old_format(run: Run, env: NodeEnvironment) -> None:
    samples = torch.ones(1, 4, 2, 2)
    save_file({"latent_tensor": samples}, str(env.folders.input / "old.latent"))
    out = run("LoadLatent", latent="old.latent")["samples"]
    assert torch.allclose(out, samples / SD_SCALE_FACTOR)


def test_load_latent_refuses_a_bad_file_clearly(run: Run, env: NodeEnvironment) -> None:
    (env.folders.input / "bad.latent").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match=r"bad\.latent"):
        run("LoadLatent", latent="bad.latent")


def test_load_latent_fingerprint_follows_content(registry, env: NodeEnvironment) -> None:
    path = env.folders.input / "f.latent"
    save_file({"latent_tensor": torch.zeros(1)}, str(path))
    spec = registry.get("LoadLatent")
    first = spec.fingerprint({"latent": "f.latent"})
    save_file({"latent_tensor": torch.ones(1)}, str(path))
    assert spec.fingerprint({"latent": "f.latent"}) != first
