"""Per-block offload (`--lowvram`): a model larger than the device budget runs one block at a time.

The model's weights stay where they were loaded (CPU, memory-mapped from the file). Its blocks are the items of its
outermost module lists (a transformer's double/single blocks, a text encoder's layers, a U-Net's down/up blocks);
everything else (embedders, final norm and projection) is small and stays on the device while the model is loaded.
Before a block's forward a device copy of each of its tensors takes the CPU tensor's place; after it the CPU tensor
is put back and the copy released. A `Ledger` counts what is on the device, so the memory manager sees the streamed
blocks too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def blocks_of(model: nn.Module) -> list[nn.Module]:
    """The items of the outermost nn.ModuleLists, in order: a transformer's blocks at the top (FLUX, SD3) or
    deeper (T5's `encoder.block`, CLIP's `text_model.encoder.layers`), a U-Net's down and up blocks."""
    blocks: list[nn.Module] = []
    for child in model.children():
        blocks.extend(child if isinstance(child, nn.ModuleList) else blocks_of(child))
    return blocks


def _tensors(module: nn.Module, recurse: bool = True) -> Iterator[tuple[nn.Module, str, torch.Tensor]]:
    """(owner, name, tensor) of every parameter and buffer, each shared tensor once."""
    seen: set[int] = set()
    for owner in module.modules() if recurse else (module,):
        for name, tensor in (*owner._parameters.items(), *owner._buffers.items()):
            if tensor is not None and id(tensor) not in seen:
                seen.add(id(tensor))
                yield owner, name, tensor


def _nbytes(tensors: list[tuple[nn.Module, str, torch.Tensor]]) -> int:
    return sum(t.numel() * t.element_size() for _o, _n, t in tensors)


class _Swap:
    """Device copies standing in for a set of tensors, and the originals to put back."""

    def __init__(self, tensors: list[tuple[nn.Module, str, torch.Tensor]], device: torch.device) -> None:
        self.originals: list[tuple[torch.Tensor, torch.Tensor]] = []
        for _owner, _name, tensor in tensors:
            self.originals.append((tensor, tensor.data))
            tensor.data = tensor.data.to(device, copy=True)

    def restore(self) -> None:
        for tensor, original in self.originals:
            tensor.data = original
        self.originals.clear()


class Ledger:
    """Bytes on the compute device, and the most there has been at once."""

    def __init__(self) -> None:
        self.resident = 0
        self.peak = 0

    def add(self, nbytes: int) -> None:
        self.resident += nbytes
        self.peak = max(self.peak, self.resident)

    def remove(self, nbytes: int) -> None:
        self.resident -= nbytes


class BlockStreamer:
    """Runs `model` with only its non-block tensors and the running block on `device`."""

    def __init__(self, model: nn.Module, device: torch.device, ledger: Ledger) -> None:
        self.model, self.device, self.ledger = model, device, ledger
        self.blocks = blocks_of(model)
        in_blocks = {id(t) for block in self.blocks for _o, _n, t in _tensors(block)}
        self.rest = [entry for entry in _tensors(model) if id(entry[2]) not in in_blocks]
        self.rest_bytes = _nbytes(self.rest)
        self._rest_swap: _Swap | None = None
        self._handles: list[RemovableHandle] = []

    @property
    def largest_block(self) -> int:
        return max((_nbytes(list(_tensors(b))) for b in self.blocks), default=0)

    def attach(self) -> None:
        """Put the non-block tensors on the device and hook every block."""
        if self._rest_swap is not None:
            return
        self._rest_swap = _Swap(self.rest, self.device)
        self.ledger.add(self.rest_bytes)
        for block in self.blocks:
            enter, leave = self._hooks(block)
            self._handles.append(block.register_forward_pre_hook(enter))
            self._handles.append(block.register_forward_hook(leave, always_call=True))

    def _hooks(self, block: nn.Module) -> tuple[Callable[..., None], Callable[..., None]]:
        swaps: list[tuple[_Swap, int]] = []

        def enter(_module: nn.Module, _args: Any) -> None:
            tensors = list(_tensors(block))
            swaps.append((_Swap(tensors, self.device), _nbytes(tensors)))
            self.ledger.add(swaps[-1][1])

        def leave(_module: nn.Module, _args: Any, _out: Any) -> None:
            swap, nbytes = swaps.pop()
            swap.restore()
            self.ledger.remove(nbytes)

        return enter, leave

    def detach(self) -> None:
        """Remove the hooks and put the non-block tensors back where they were."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._rest_swap is not None:
            self._rest_swap.restore()
            self._rest_swap = None
            self.ledger.remove(self.rest_bytes)
