"""The one place that decides where models run and in which precision, and moves them on and off the device.

Models are loaded to the CPU (memory-mapped reads), then moved to the compute device when a job needs them.
Under device-memory pressure the least recently used other models go back to the CPU first. With `lowvram`, a
model larger than the device budget is not moved at all: it runs block by block (diffusion.offload), and the
manager's ledger counts the blocks on the device as they come and go.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from diffusion.offload import BlockStreamer, Ledger


def pick_device(force_cpu: bool = False) -> torch.device:
    if force_cpu:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """The compute dtype: `precision` when given; for `auto`, fp32 on the CPU (its fp16 kernels are slow or
    missing), bf16 where supported, else fp16, on a GPU."""
    if precision != "auto":
        if precision not in _DTYPES:
            raise ValueError(f"unknown precision {precision!r}; expected auto or one of {', '.join(_DTYPES)}")
        return _DTYPES[precision]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def available_ram() -> int:
    """RAM the OS can still give this process without swapping (MemAvailable), or free pages where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def module_nbytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


@dataclass(eq=False)
class ModelManager:
    """Device and dtype policy plus the set of modules currently on the compute device."""

    device: torch.device
    dtype: torch.dtype
    keep_file_dtype: bool = False  # fp32 compute over a file's 16-bit weights as stored (`--precision auto` on CPU)
    offload_device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    reserve_bytes: int = 1 << 30
    lowvram: bool = False  # `--lowvram`: models larger than the budget run block by block
    budget_bytes: int | None = None  # the device budget; None: what the device has free less `reserve_bytes`
    ledger: Ledger = field(default_factory=Ledger, repr=False)
    _resident: OrderedDict[int, nn.Module] = field(default_factory=OrderedDict, repr=False)
    _streamed: dict[int, BlockStreamer] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def create(
        cls, force_cpu: bool = False, dtype: torch.dtype | None = None, precision: str = "auto", lowvram: bool = False
    ) -> ModelManager:
        """`precision` (`--precision`): `auto` computes in fp32 on the CPU with 16-bit weights kept as stored (half
        the memory), and in bf16/fp16 on a GPU; `fp32`, `bf16` and `fp16` set the compute and weight dtype.
        `lowvram` (`--lowvram`): models that do not fit the device run block by block."""
        device = pick_device(force_cpu)
        chosen = dtype or pick_dtype(device, precision)
        keep = precision == "auto" and chosen == torch.float32
        return cls(device=device, dtype=chosen, keep_file_dtype=keep, lowvram=lowvram)

    @property
    def offloads(self) -> bool:
        return self.device != self.offload_device

    def budget(self) -> int:
        """Bytes models may take on the device: `budget_bytes`, else what it has free less the reserve plus what
        Loom's models already hold there."""
        if self.budget_bytes is not None:
            return self.budget_bytes
        return self.free_bytes() - self.reserve_bytes + self.ledger.resident

    def streams(self, module: nn.Module) -> bool:
        """Whether `module` currently runs block by block."""
        return id(module) in self._streamed

    def prepare(self, module: nn.Module) -> nn.Module:
        """A freshly loaded module: cast to the working dtype and put in eval mode (it stays on the CPU)."""
        return module.to(dtype=self.dtype).eval().requires_grad_(False)

    def load(self, modules: Iterable[nn.Module]) -> None:
        """Make `modules` resident on the compute device, offloading others as memory requires; with `lowvram`, one
        that does not fit the budget is hooked to run block by block instead."""
        if not self.offloads and not self.lowvram:
            return
        with self._lock:
            wanted = list(modules)
            need = sum(module_nbytes(m) for m in wanted if id(m) not in self._resident)
            self._free(need, keep={id(m) for m in wanted})
            for module in wanted:
                if id(module) not in self._resident:
                    self._make_resident(module)
                self._resident[id(module)] = module
                self._resident.move_to_end(id(module))

    def _make_resident(self, module: nn.Module) -> None:
        size = module_nbytes(module)
        if self.lowvram and self.ledger.resident + size > self.budget():
            streamer = BlockStreamer(module, self.device, self.ledger)
            streamer.attach()
            self._streamed[id(module)] = streamer
            return
        module.to(self.device)
        self.ledger.add(size)

    def _release(self, key: int, module: nn.Module) -> None:
        streamer = self._streamed.pop(key, None)
        if streamer is not None:
            streamer.detach()
            return
        module.to(self.offload_device)
        self.ledger.remove(module_nbytes(module))

    def _free(self, need: int, keep: set[int]) -> None:
        if self.device.type != "cuda":
            return
        free, _total = torch.cuda.mem_get_info(self.device)
        for key in list(self._resident):
            if free - self.reserve_bytes >= need:
                break
            if key in keep:
                continue
            module = self._resident.pop(key)
            before = self.ledger.resident
            self._release(key, module)
            free += before - self.ledger.resident
        torch.cuda.empty_cache()

    def free_bytes(self) -> int:
        """Memory a computation may still take on the compute device: free VRAM on a GPU, available RAM otherwise."""
        if self.device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(self.device)
            return int(free)
        return available_ram()

    def unload_all(self) -> None:
        """Move every resident module back to the CPU (the `/free` request, or before a big allocation)."""
        with self._lock:
            for key, module in self._resident.items():
                self._release(key, module)
            self._resident.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def forget(self, module: nn.Module) -> None:
        """Called when a cached model is evicted, so the manager holds no reference to it."""
        with self._lock:
            if self._resident.pop(id(module), None) is None:
                return
            streamer = self._streamed.pop(id(module), None)
            if streamer is not None:
                streamer.detach()
            else:
                self.ledger.remove(module_nbytes(module))
