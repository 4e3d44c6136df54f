"""Weights kept in a file's 16-bit dtype while computing in fp32: the same numbers as an fp32 copy, half the memory,
and a loaded model that no longer depends on the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from diffusion.loader import load_checkpoint
from diffusion.memory import ModelManager, pick_dtype
from diffusion.precision import CastLinear, cast_per_layer, storage_dtype
from diffusion.sampling import SampleRequest, sample


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.lin = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.gn = nn.GroupNorm(2, 4)
        self.scale = nn.Parameter(torch.tensor(1.5))

    def forward(self, ids: torch.Tensor, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.norm(self.lin(self.emb(ids))) * self.scale, self.gn(self.conv(img))


def test_cast_layers_compute_in_fp32_from_fp16_weights() -> None:
    torch.manual_seed(0)
    reference = Mixed().half().float()  # fp32 weights holding exactly the fp16-rounded values
    stored = Mixed().half()
    stored.load_state_dict({k: v.half() for k, v in reference.state_dict().items()})
    cast_per_layer(stored, torch.float32)
    assert isinstance(stored.lin, CastLinear) and stored.lin.weight.dtype == torch.float16
    assert stored.scale.dtype == torch.float32, "a loose parameter is cast once"
    ids, img = torch.tensor([[1, 2, 3]]), torch.randn(1, 2, 5, 5).half()
    got, want = stored(ids, img), reference(ids, img.float())
    for g, w in zip(got, want, strict=True):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, w, rtol=0, atol=0)


def test_precision_policy() -> None:
    cpu = torch.device("cpu")
    assert pick_dtype(cpu) == torch.float32 and pick_dtype(cpu, "bf16") == torch.bfloat16
    auto, fp32, bf16 = (ModelManager.create(force_cpu=True, precision=p) for p in ("auto", "fp32", "bf16"))
    assert (auto.dtype, auto.keep_file_dtype) == (torch.float32, True)
    assert (fp32.dtype, fp32.keep_file_dtype) == (torch.float32, False)
    assert (bf16.dtype, bf16.keep_file_dtype) == (torch.bfloat16, False)
    assert storage_dtype(torch.float16, torch.float32, True) == torch.float16
    assert storage_dtype(torch.float32, torch.float32, True) == torch.float32
    assert storage_dtype(torch.float16, torch.bfloat16, True) == torch.bfloat16
    with pytest.raises(ValueError, match="unknown precision"):
        pick_dtype(cpu, "fp8")


@pytest.fixture
def fp16_file(tiny_files, tmp_path: Path) -> Path:
    state = load_file(str(tiny_files["sd1"][0]))
    path = tmp_path / "tiny-fp16.safetensors"
    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(path))
    return path


def _latent(ckpt, seed: int = 3) -> torch.Tensor:
    pos, neg = ckpt.clip.encode("a red fox"), ckpt.clip.encode("")
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    req = SampleRequest(ckpt.model, seed, 3, 5.0, "euler", "normal", [[pos.cond, {}]], [[neg.cond, {}]], latent)
    return sample(req)["samples"]


def test_fp16_file_kept_as_stored_gives_the_fp32_result(fp16_file: Path) -> None:
    kept = load_checkpoint(fp16_file, ModelManager.create(force_cpu=True, precision="auto"))
    full = load_checkpoint(fp16_file, ModelManager.create(force_cpu=True, precision="fp32"))
    dtypes = {p.dtype for p in kept.model.unet.parameters()}
    assert dtypes == {torch.float16}
    assert {p.dtype for p in full.model.unet.parameters()} == {torch.float32}
    torch.testing.assert_close(_latent(kept), _latent(full), rtol=1e-5, atol=1e-5)
    image = kept.vae.decode(torch.randn(1, 4, 8, 8))
    assert image.dtype == torch.float32 and torch.isfinite(image).all()


def test_loaded_model_does_not_depend_on_the_file(fp16_file: Path) -> None:
    ckpt = load_checkpoint(fp16_file, ModelManager.create(force_cpu=True))
    before = _latent(ckpt)
    fp16_file.write_bytes(fp16_file.read_bytes()[:8] + bytes(fp16_file.stat().st_size - 8))  # zero every weight
    torch.testing.assert_close(_latent(ckpt), before, rtol=0, atol=0)


def test_bf16_precision_runs_in_bf16(fp16_file: Path) -> None:
    ckpt = load_checkpoint(fp16_file, ModelManager.create(force_cpu=True, precision="bf16"))
    assert {p.dtype for p in ckpt.model.unet.parameters()} == {torch.bfloat16}
    out = _latent(ckpt)
    assert torch.isfinite(out).all()


def _conv_weights(ckpt) -> list[torch.Tensor]:
    """The 3x3 ones: a 1x1 kernel's layouts coincide."""
    return [m.weight for m in ckpt.model.unet.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


def test_bf16_on_cpu_keeps_unet_convolutions_channels_last(fp16_file: Path) -> None:
    """oneDNN's fastest bf16 layout on a CPU; fp32 keeps the default one, and the image is the same either way."""
    bf16 = load_checkpoint(fp16_file, ModelManager.create(force_cpu=True, precision="bf16"))
    fp32 = load_checkpoint(fp16_file, ModelManager.create(force_cpu=True, precision="fp32"))
    last = [w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in _conv_weights(bf16)]
    assert last and all(last)
    assert all(w.is_contiguous() for w in _conv_weights(fp32))
    plain = load_checkpoint(fp16_file, ModelManager.create(force_cpu=True, precision="bf16"))
    plain.model.unet.to(memory_format=torch.contiguous_format)
    exact = _latent(fp32)
    err_last, err_plain = ((_latent(m).float() - exact).abs().mean().item() for m in (bf16, plain))
    assert err_last <= 1.5 * err_plain + 1e-3  # bf16 rounding either way, summed in another order
