"""Reading model files: single-file `.safetensors` (memory-mapped) and `.ckpt`/`.pt` through weights_only.

Modules are built with empty (meta) parameters and then take the file's tensors with `assign=True`, so loading
costs about one read of the file and no throw-away random initialisation.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffusion import offline

SAFETENSORS_SUFFIXES = frozenset({".safetensors", ".sft"})
PICKLE_SUFFIXES = frozenset({".ckpt", ".pt", ".pth", ".bin"})


class CheckpointError(ValueError):
    """A model file Loom cannot use; the message names the file and why."""


class TensorFile(Mapping[str, torch.Tensor]):
    """Lazy name -> tensor view of one model file. Safetensors are read on access from a memory map."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if not self.path.is_file():
            raise CheckpointError(f"model file not found: {self.path}")
        if suffix in SAFETENSORS_SUFFIXES:
            self._open_safetensors()
        elif suffix in PICKLE_SUFFIXES:
            self._open_pickle()
        else:
            raise CheckpointError(f"{self.path.name}: unsupported model file type {suffix!r}")

    def _open_safetensors(self) -> None:
        from safetensors import safe_open

        try:
            self._handle = safe_open(str(self.path), framework="pt", device="cpu")
            self._keys = list(self._handle.keys())
            self._shapes = {k: tuple(self._handle.get_slice(k).get_shape()) for k in self._keys}
            self.metadata = self._handle.metadata() or {}
        except Exception as exc:  # safetensors raises its own error types for truncated or corrupt headers
            raise CheckpointError(f"{self.path.name}: not a readable safetensors file ({exc})") from exc
        self._tensors: dict[str, torch.Tensor] | None = None

    def _open_pickle(self) -> None:
        try:
            mmap = zipfile.is_zipfile(self.path)  # only torch.save's zip format can be memory-mapped
            obj = torch.load(self.path, map_location="cpu", weights_only=True, mmap=mmap)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(
                f"{self.path.name}: refusing to load: the pickle holds more than plain tensors and Loom only loads "
                "pickles with torch.load(weights_only=True). Convert it to .safetensors."
            ) from exc
        except Exception as exc:
            raise CheckpointError(f"{self.path.name}: not a readable checkpoint ({exc})") from exc
        if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
            obj = obj["state_dict"]
        if not isinstance(obj, Mapping):
            raise CheckpointError(f"{self.path.name}: expected a dict of tensors, found {type(obj).__name__}")
        self._tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        self._keys = list(self._tensors)
        self._shapes = {k: tuple(v.shape) for k, v in self._tensors.items()}
        self.metadata = {}

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return self._shapes

    def __getitem__(self, key: str) -> torch.Tensor:
        if self._tensors is not None:
            return self._tensors[key]
        if key not in self._shapes:
            raise KeyError(key)
        try:
            return self._handle.get_tensor(key)
        except Exception as exc:
            raise CheckpointError(f"{self.path.name}: cannot read tensor {key!r} ({exc})") from exc

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def build_empty(factory: Any) -> nn.Module:
    """Construct a module with parameters on the meta device (buffers stay real); `factory()` builds it."""
    accelerate = offline.accelerate()
    with accelerate.init_empty_weights(include_buffers=False):
        return factory()


def assign_weights(module: nn.Module, state: Mapping[str, torch.Tensor], what: str, dtype: torch.dtype) -> nn.Module:
    """Give an empty module its tensors; a missing or extra tensor is an error naming the component."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if extra:
            detail.append(f"{len(extra)} unexpected (e.g. {', '.join(extra[:3])})")
        raise CheckpointError(f"{what}: tensors do not fit the detected architecture: {'; '.join(detail)}")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{what}: tensor {key} has shape {tuple(tensor.shape)}, expected {tuple(expected[key].shape)}"
            )
    cast = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
    module.load_state_dict(cast, strict=True, assign=True)
    return module.eval().requires_grad_(False)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a small model file (LoRA, ControlNet, upscaler), read at once; errors name the file."""
    tensors = TensorFile(path)
    return {key: tensors[key] for key in tensors}
