"""Per-block offload (`--lowvram`) under a fake device budget (the CPU stands in for the device: the blocks' device
copies are real copies, so the swap in and out is exercised), on FLUX and on SD3 (joint blocks, the last one
text-pre-only, SD3.5 medium's second image attention and qk-norm): the same outputs, the weights left in place,
and the manager's count of device bytes under the budget, which loading the model whole would break."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from diffusion.dit_loader import load_diffusion_model
from diffusion.memory import ModelManager, module_nbytes
from diffusion.offload import BlockStreamer, Ledger, blocks_of
from diffusion.tiny_dit import flux_file_state, sd3_file_state, tiny_flux_arch, tiny_sd3_arch

CPU = torch.device("cpu")
FAMILIES = ["flux", "sd3"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("offload")
    states = {
        "flux": flux_file_state(tiny_flux_arch(hidden=64, double=2, single=3)),
        "sd3": sd3_file_state(tiny_sd3_arch(depth=4, hidden=128, dual=(0, 1), qk_norm=True)),
    }
    for family, state in states.items():
        save_file(state, str(root / f"{family}.safetensors"))
    return {family: root / f"{family}.safetensors" for family in states}


def _manager(budget: int | None = None) -> ModelManager:
    return ModelManager(device=CPU, dtype=torch.float32, lowvram=budget is not None, budget_bytes=budget)


def _inputs(family: str = "flux") -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    if family == "sd3":
        return {
            "hidden_states": torch.randn(1, 16, 6, 4, generator=gen),
            "encoder_hidden_states": torch.randn(1, 5, 64, generator=gen),
            "pooled_projections": torch.randn(1, 64, generator=gen),
            "timestep": torch.tensor([700.0]),
        }
    return {
        "hidden_states": torch.randn(1, 4, 64, generator=gen),
        "encoder_hidden_states": torch.randn(1, 3, 32, generator=gen),
        "pooled_projections": torch.randn(1, 32, generator=gen),
        "timestep": torch.tensor([0.7]),
        "guidance": torch.tensor([3.5]),
        "img_ids": torch.zeros(4, 3),
        "txt_ids": torch.zeros(3, 3),
    }


def _pointers(module: nn.Module) -> list[int]:
    return [t.data_ptr() for t in (*module.parameters(), *module.buffers())]


def _budget_for(module: nn.Module) -> int:
    """Room for the non-block layers and the largest block, far less than the model."""
    streamer = BlockStreamer(module, CPU, Ledger())
    return streamer.rest_bytes + streamer.largest_block


@pytest.mark.parametrize(("family", "blocks"), [("flux", 5), ("sd3", 4)])
def test_blocks_stream_through_under_the_budget_with_the_same_output(
    files: dict[str, Path], family: str, blocks: int
) -> None:
    whole = load_diffusion_model(files[family], _manager()).unet
    with torch.no_grad():
        expected = whole(**_inputs(family)).sample
    budget = _budget_for(whole)
    assert len(blocks_of(whole)) == blocks and budget < module_nbytes(whole) * 2 / 3

    manager = _manager(budget)
    model = load_diffusion_model(files[family], manager).unet
    before = _pointers(model)
    manager.load([model])
    assert manager.streams(model)
    seen: list[int] = []
    hooks = [block.register_forward_pre_hook(lambda *_: seen.append(manager.ledger.resident))
             for block in model.transformer_blocks]  # fmt: skip
    with torch.no_grad():
        out = model(**_inputs(family)).sample
    for hook in hooks:
        hook.remove()
    assert torch.equal(out, expected)
    assert manager.ledger.peak <= budget
    assert len(seen) == len(model.transformer_blocks)
    assert min(seen) > manager.ledger.resident  # each running block was counted while it ran
    assert _pointers(model) != before  # the non-block layers are on the "device" while loaded...
    manager.unload_all()
    assert _pointers(model) == before and manager.ledger.resident == 0  # ...and the file's tensors are back
    assert not manager.streams(model)


@pytest.mark.parametrize("family", FAMILIES)
def test_loading_the_model_whole_breaks_the_same_budget(files: dict[str, Path], family: str) -> None:
    """What the offload prevents: a manager that does not stream counts the whole model on the device."""
    model = load_diffusion_model(files[family], _manager()).unet
    budget = _budget_for(model)
    roomy = _manager(budget * 100)
    roomy.load([model])
    assert not roomy.streams(model)
    with torch.no_grad():
        model(**_inputs(family))
    assert roomy.ledger.peak == module_nbytes(model) > budget


def _sampling_inputs(family: str) -> tuple[list, list, dict]:
    width = 32 if family == "flux" else 64
    gen = torch.Generator().manual_seed(4)
    cond = [[torch.randn(1, 3, width, generator=gen), {"pooled_output": torch.ones(1, width)}]]
    negative = [[torch.randn(1, 3, width, generator=gen), {"pooled_output": torch.zeros(1, width)}]]
    return cond, negative, {"samples": torch.zeros(1, 16, 4, 6)}


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_sampling_with_lowvram_gives_the_same_latent(files: dict[str, Path], family: str) -> None:
    """FLUX guidance-distilled at cfg 2; SD3 with a real negative at cfg 4 and skip-layer guidance, whose extra
    prediction runs with a joint block skipped while the others stream."""
    from diffusion.post_guidance import SkipLayerGuidance
    from diffusion.sampling import SampleRequest, sample
    from diffusion.unet_patches import SkipBlocks

    cond, negative, latent = _sampling_inputs(family)

    def run(manager: ModelManager) -> tuple[torch.Tensor, ModelManager]:
        model = load_diffusion_model(files[family], manager)
        if family == "sd3":
            model = model.with_post_guidance(SkipLayerGuidance(SkipBlocks((1,)), 3.0, 1e9, 0.0))
            req = SampleRequest(model, 5, 3, 4.0, "dpmpp_2m_sde", "simple", cond, negative, latent)
        else:
            req = SampleRequest(model, 5, 3, 2.0, "dpmpp_2m_sde", "simple", cond, cond, latent)
        return sample(req)["samples"], manager

    plain, _ = run(_manager())
    budget = _budget_for(load_diffusion_model(files[family], _manager()).unet)
    offloaded, manager = run(_manager(budget))
    assert torch.equal(offloaded, plain) and torch.isfinite(plain).all()
    assert 0 < manager.ledger.peak <= budget


def test_blocks_are_found_below_the_top_level_too() -> None:
    from diffusion.t5 import build_t5
    from diffusion.tiny_dit import t5_file_state, tiny_t5_arch

    t5 = build_t5(tiny_t5_arch(), t5_file_state(), "t5", torch.float32)
    assert blocks_of(t5) == list(t5.encoder.block) and len(blocks_of(t5)) == tiny_t5_arch().layers


@pytest.mark.parametrize("family", FAMILIES)
def test_a_failing_block_still_gives_its_weights_back(files: dict[str, Path], family: str) -> None:
    model = load_diffusion_model(files[family], _manager()).unet
    manager = _manager(_budget_for(model))
    manager.load([model])
    block = model.single_transformer_blocks[0] if family == "flux" else model.transformer_blocks[-1]
    before = _pointers(block)
    resident = manager.ledger.resident

    def fail(*_: object) -> None:
        raise RuntimeError("out of memory inside the block")

    (block.proj_out if family == "flux" else block.ff).register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="inside the block"), torch.no_grad():
        model(**_inputs(family))
    assert _pointers(block) == before and manager.ledger.resident == resident
