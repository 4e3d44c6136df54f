"""Loading tiny LDM-layout files gives modules that compute what the in-memory reference modules compute."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diffusion.checkpoint import CheckpointError, TensorFile
from diffusion.loader import load_checkpoint, load_vae_file
from diffusion.text_encoder import run_clip
from diffusion.tiny import ldm_state


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_round_trip_matches_reference(tiny_files, manager, family: str) -> None:
    path, ref = tiny_files[family]
    ckpt = load_checkpoint(path, manager)
    assert ckpt.model is not None and ckpt.clip is not None and ckpt.vae is not None
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 8, 8, generator=gen)
    ctx = torch.randn(1, 77, ref.spec.unet.context_dim, generator=gen)
    added = None
    if family == "sdxl":
        added = {"text_embeds": torch.randn(1, 32, generator=gen), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
    kwargs = {"added_cond_kwargs": added} if added else {}
    with torch.no_grad():
        expected = ref.unet(x, torch.tensor([500.0]), encoder_hidden_states=ctx, **kwargs).sample
        got = ckpt.model.unet(x, torch.tensor([500.0]), encoder_hidden_states=ctx, **kwargs).sample
        assert _max_diff(expected, got) < 1e-5
        assert _max_diff(ref.vae.decode(x).sample, ckpt.vae.module.decode(x).sample) < 1e-5
        ids = torch.tensor([[49406, 320, 1125, 539, 320, 2368, 49407]])
        for unit, module in zip(ckpt.clip.units, ref.text, strict=True):
            assert _max_diff(module(ids).last_hidden_state, unit.module(ids).last_hidden_state) < 1e-5


def test_manual_clip_pass_equals_transformers_forward(sd1) -> None:
    unit = sd1.clip.units[0]
    tokens = [49406, 320, 1125, 539, 320, 2368, *[49407] * 71]
    with torch.no_grad():
        mine, _ = run_clip(unit, tokens, -1, torch.device("cpu"), torch.float32)
        ref = unit.module(torch.tensor([tokens])).last_hidden_state
    assert _max_diff(mine, ref) < 1e-5


def test_clip_skip_changes_the_encoding(sd1) -> None:
    last = sd1.clip.encode("a cat").cond
    skipped = sd1.clip.with_layer(-2).encode("a cat").cond
    assert last.shape == skipped.shape == (1, 77, 32)
    assert not torch.allclose(last, skipped)
    assert torch.equal(sd1.clip.encode("a cat").cond, last)
    assert sd1.clip.with_layer(-2).loom_nbytes() < sd1.clip.loom_nbytes() // 100  # shares the modules


def test_weighted_and_long_prompts(sd1) -> None:
    plain = sd1.clip.encode("a cat").cond
    assert not torch.allclose(sd1.clip.encode("a (cat:1.5)").cond, plain)
    assert sd1.clip.encode(" ".join(["cat"] * 100)).cond.shape == (1, 154, 32)


def test_textual_inversion_file_is_used(tmp_path: Path, sd1) -> None:
    save_file({"emb_params": torch.randn(2, 32)}, str(tmp_path / "style.safetensors"))
    clip = sd1.clip.with_embedding_dirs([tmp_path])
    warnings: list[str] = []
    with_emb = clip.encode("a embedding:style cat", warnings.append).cond
    assert not warnings
    assert not torch.allclose(with_emb, clip.encode("a cat").cond)
    clip.encode("embedding:absent cat", warnings.append)
    assert warnings and "absent" in warnings[0]


def test_ckpt_with_plain_tensors_loads(tmp_path: Path, tiny_files, manager) -> None:
    _path, ref = tiny_files["sd1"]
    target = tmp_path / "model.ckpt"
    torch.save({"state_dict": ldm_state(ref)}, target)
    assert load_checkpoint(target, manager).info.family == "sd1"


class Payload:
    def __reduce__(self):
        return (print, ("this would run",))


def test_pickle_with_code_is_refused(tmp_path: Path) -> None:
    legacy = tmp_path / "evil.ckpt"
    with open(legacy, "wb") as fh:
        pickle.dump({"state_dict": {"w": Payload()}}, fh)
    zipped = tmp_path / "evil.pt"
    torch.save({"w": Payload()}, zipped)
    for target in (legacy, zipped):
        with pytest.raises(CheckpointError, match="weights_only"):
            TensorFile(target)


def test_truncated_safetensors(tmp_path: Path, tiny_files) -> None:
    data = tiny_files["sd1"][0].read_bytes()
    target = tmp_path / "cut.safetensors"
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors"):
        TensorFile(target)
    (tmp_path / "junk.safetensors").write_bytes(b"\x00\x01")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        TensorFile(tmp_path / "junk.safetensors")


def test_wrong_layout_is_named(tmp_path: Path, manager) -> None:
    target = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down_blocks_0.lora_down.weight": torch.zeros(4, 4)}, str(target))
    with pytest.raises(CheckpointError, match=r"lora\.safetensors.*no model\.diffusion_model"):
        load_checkpoint(target, manager)


def test_unsupported_suffix_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unsupported"):
        TensorFile(tmp_path / "model.onnx")
    with pytest.raises(CheckpointError, match="not found"):
        TensorFile(tmp_path / "none.safetensors")


def test_standalone_vae_file(tmp_path: Path, tiny_files, manager) -> None:
    _path, ref = tiny_files["sd1"]
    vae_only = {
        k.removeprefix("first_stage_model."): v for k, v in ldm_state(ref).items() if k.startswith("first_stage_model.")
    }
    save_file(vae_only, str(tmp_path / "vae.safetensors"))
    vae = load_vae_file(tmp_path / "vae.safetensors", manager)
    x = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        assert _max_diff(vae.module.decode(x).sample, ref.vae.decode(x).sample) < 1e-5


def test_tensors_are_cast_as_read_and_membership_reads_nothing(tmp_path: Path, monkeypatch) -> None:
    """Mixed dtypes and sizes (odd byte counts before a tensor): each comes back exact, in its own dtype or cast,
    in memory of its own; `in` answers from the header on every view of a file."""
    from diffusion.checkpoint import SafetensorsReader, ShardedTensors
    from diffusion.convert import Renamed
    from diffusion.dit_text import KeyView

    gen = torch.Generator().manual_seed(0)
    state = {
        "a.bytes": torch.randint(0, 255, (3,), dtype=torch.uint8, generator=gen),
        "a.half": torch.randn(5, 7, generator=gen).half(),
        "b.bf16": torch.randn(4, 3, 3, generator=gen).bfloat16(),
        "b.empty": torch.zeros(0, 4),
        "b.int": torch.arange(9, dtype=torch.int64),
    }
    path = tmp_path / "mixed.safetensors"
    save_file(state, str(path))
    file = TensorFile(path)
    for key, tensor in state.items():
        got = file[key]
        assert got.dtype == tensor.dtype and torch.equal(got, tensor)
        got.zero_()  # writable, and not the file: a second read is unchanged
        assert torch.equal(file[key], tensor)
        cast = file.read_as(key, lambda d: torch.float32 if d.is_floating_point else d)
        assert cast.dtype == (torch.float32 if tensor.is_floating_point() else tensor.dtype)
        assert torch.equal(cast, tensor.to(cast.dtype))

    reads: list[str] = []
    real_read = SafetensorsReader.read
    monkeypatch.setattr(
        SafetensorsReader, "read", lambda self, key, dtype=None: reads.append(key) or real_read(self, key, dtype)
    )
    views = [file, ShardedTensors([path]), Renamed(file, {"x": "a.half"}), KeyView(file, "b.", "c.")]
    present = ["a.half", "a.half", "x", "c.bf16"]
    for view, key in zip(views, present, strict=True):
        assert key in view and "missing" not in view
    assert reads == []
    assert torch.equal(KeyView(file, "b.", "c.").read_as("c.bf16", lambda d: torch.float32), state["b.bf16"].float())
    assert reads == ["b.bf16"]
