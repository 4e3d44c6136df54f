import torch
from torch import nn

from diffusion.memory import ModelManager, module_nbytes, pick_device, pick_dtype


def test_cpu_policy() -> None:
    manager = ModelManager.create(force_cpu=True)
    assert manager.device == torch.device("cpu") and manager.dtype == torch.float32
    assert not manager.offloads
    assert pick_device(force_cpu=True).type == "cpu" and pick_dtype(torch.device("cpu")) == torch.float32


def test_prepare_casts_and_freezes() -> None:
    manager = ModelManager(torch.device("cpu"), torch.float64)
    module = manager.prepare(nn.Linear(3, 2))
    assert module.weight.dtype == torch.float64 and not module.weight.requires_grad and not module.training
    assert module_nbytes(module) == (3 * 2 + 2) * 8


def test_offloading_moves_modules_between_devices() -> None:
    """With the 'device' and the offload device both being the CPU under other names, moves are exercised."""
    manager = ModelManager(torch.device("cpu", 0), torch.float32, offload_device=torch.device("cpu"))
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    manager.load([a, b])
    assert len(manager._resident) == 2
    manager.forget(a)
    assert len(manager._resident) == 1
    manager.unload_all()
    assert not manager._resident
