"""Per-block offload under a fake device budget (the CPU stands in for the device: the blocks' device copies are
real copies, so the swap in and out is exercised): the same outputs, the weights left in place, and the manager's
count of device bytes under the budget, which loading the model whole would break."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from diffusion.dit_loader import load_diffusion_model
from diffusion.memory import ModelManager, module_nbytes
from diffusion.offload import BlockStreamer, Ledger, blocks_of
from diffusion.tiny_dit import flux_file_state, tiny_flux_arch

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def flux_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("offload") / "flux.safetensors"
    save_file(flux_file_state(tiny_flux_arch(hidden=64, double=2, single=3)), str(path))
    return path


def _manager(budget: int | None = None) -> ModelManager:
    return ModelManager(device=CPU, dtype=torch.float32, lowvram=budget is not None, budget_bytes=budget)


def _inputs() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
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


def test_blocks_stream_through_under_the_budget_with_the_same_output(flux_file: Path) -> None:
    whole = load_diffusion_model(flux_file, _manager()).unet
    with torch.no_grad():
        expected = whole(**_inputs()).sample
    budget = _budget_for(whole)
    assert len(blocks_of(whole)) == 5 and budget < module_nbytes(whole) / 2

    manager = _manager(budget)
    model = load_diffusion_model(flux_file, manager).unet
    before = _pointers(model)
    manager.load([model])
    assert manager.streams(model)
    seen: list[int] = []
    hook = model.transformer_blocks[1].register_forward_pre_hook(lambda *_: seen.append(manager.ledger.resident))
    with torch.no_grad():
        out = model(**_inputs()).sample
    hook.remove()
    assert torch.equal(out, expected)
    assert manager.ledger.peak <= budget
    assert seen and seen[0] > manager.ledger.resident  # the running block was counted while it ran
    assert _pointers(model) != before  # the non-block layers are on the "device" while loaded...
    manager.unload_all()
    assert _pointers(model) == before and manager.ledger.resident == 0  # ...and the file's tensors are back
    assert not manager.streams(model)


def test_loading_the_model_whole_breaks_the_same_budget(flux_file: Path) -> None:
    """What the offload prevents: a manager that does not stream counts the whole model on the device."""
    model = load_diffusion_model(flux_file, _manager()).unet
    budget = _budget_for(model)
    roomy = _manager(budget * 100)
    roomy.load([model])
    assert not roomy.streams(model)
    with torch.no_grad():
        model(**_inputs())
    assert roomy.ledger.peak == module_nbytes(model) > budget


@pytest.mark.slow
def test_sampling_with_lowvram_gives_the_same_latent(flux_file: Path) -> None:
    from diffusion.sampling import SampleRequest, sample

    cond = [[torch.randn(1, 3, 32, generator=torch.Generator().manual_seed(4)), {"pooled_output": torch.ones(1, 32)}]]
    latent = {"samples": torch.zeros(1, 16, 4, 4)}

    def run(manager: ModelManager) -> tuple[torch.Tensor, ModelManager]:
        model = load_diffusion_model(flux_file, manager)
        req = SampleRequest(model, 5, 3, 2.0, "dpmpp_2m_sde", "simple", cond, cond, latent)
        return sample(req)["samples"], manager

    plain, _ = run(_manager())
    budget = _budget_for(load_diffusion_model(flux_file, _manager()).unet)
    offloaded, manager = run(_manager(budget))
    assert torch.equal(offloaded, plain)
    assert 0 < manager.ledger.peak <= budget


def test_blocks_are_found_below_the_top_level_too() -> None:
    from diffusion.t5 import build_t5
    from diffusion.tiny_dit import t5_file_state, tiny_t5_arch

    t5 = build_t5(tiny_t5_arch(), t5_file_state(), "t5", torch.float32)
    assert blocks_of(t5) == list(t5.encoder.block) and len(blocks_of(t5)) == tiny_t5_arch().layers


def test_a_failing_block_still_gives_its_weights_back(flux_file: Path) -> None:
    model = load_diffusion_model(flux_file, _manager()).unet
    manager = _manager(_budget_for(model))
    manager.load([model])
    block = model.single_transformer_blocks[0]
    before = _pointers(block)
    resident = manager.ledger.resident

    def fail(*_: object) -> None:
        raise RuntimeError("out of memory inside the block")

    block.proj_out.register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="inside the block"), torch.no_grad():
        model(**_inputs())
    assert _pointers(block) == before and manager.ledger.resident == resident
