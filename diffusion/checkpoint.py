"""Reading model files: single-file `.safetensors` (each tensor cast out of its own pages) and `.ckpt`/`.pt`
through weights_only.

Modules are built with empty (meta) parameters and then take the file's tensors with `assign=True`, so loading
costs about one read of the file and no throw-away random initialisation.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffusion import offline
from diffusion.precision import cast_per_layer, storage_dtype

SAFETENSORS_SUFFIXES = frozenset({".safetensors", ".sft"})
PICKLE_SUFFIXES = frozenset({".ckpt", ".pt", ".pth", ".bin"})


class CheckpointError(ValueError):
    """A model file Loom cannot use; the message names the file and why."""


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the format's own limit on the JSON header


@dataclass(frozen=True, slots=True)
class TensorEntry:
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int  # absolute file offsets of the tensor's bytes
    end: int


class SafetensorsReader:
    """Reads each tensor of a `.safetensors` file into memory of its own, cast on the way when asked.

    Each read maps only that tensor's pages, and only while it is copied or cast out of them: casting straight from
    the page cache is one pass over the bytes (a read into a buffer first is two, plus that buffer's first-touch
    cost), and the pages stop counting as the process' memory as soon as the tensor is out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                raise ValueError("shorter than a safetensors header")
            (size,) = struct.unpack("<Q", head)
            if size > MAX_HEADER_BYTES:
                raise ValueError(f"the header claims {size} bytes")
            raw = fh.read(size)
            file_size = os.fstat(fh.fileno()).st_size
        if len(raw) != size:
            raise ValueError("the header is cut short")
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        meta = header.pop("__metadata__", None)
        self.metadata: dict[str, str] = meta if isinstance(meta, dict) else {}
        base = 8 + size
        self.entries: dict[str, TensorEntry] = {}
        for key, info in header.items():
            try:
                dtype = _SAFETENSORS_DTYPES[info["dtype"]]
                begin, end = (int(v) for v in info["data_offsets"])
                shape = tuple(int(d) for d in info["shape"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"tensor {key!r} has a bad header entry ({exc})") from exc
            nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
            if end - begin != nbytes or begin < 0 or base + end > file_size:
                raise ValueError(f"tensor {key!r} does not fit the file (truncated?)")
            self.entries[key] = TensorEntry(dtype, shape, base + begin, base + end)

    def read(self, key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The tensor `key` in `dtype` (its own when None), never a view of the file."""
        entry = self.entries[key]
        target = dtype or entry.dtype
        size = entry.end - entry.start
        if size == 0:
            return torch.empty(entry.shape, dtype=target)
        start = entry.start - entry.start % mmap.ALLOCATIONGRANULARITY
        with open(self.path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size < entry.end:  # a file cut short since its header was read
                raise ValueError("the file ended early")
            # Copy-on-write: a writable buffer for torch, and nothing is written, so nothing is ever copied.
            with mmap.mmap(fh.fileno(), entry.end - start, offset=start, access=mmap.ACCESS_COPY) as pages:
                raw = torch.frombuffer(pages, dtype=torch.uint8, count=size, offset=entry.start - start)
                stored = raw.view(entry.dtype).reshape(entry.shape)
                tensor = stored.clone() if target == entry.dtype else stored.to(target)
                del raw, stored  # the map closes only once no tensor looks into it
        return tensor


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
        try:
            self._reader = SafetensorsReader(self.path)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{self.path.name}: not a readable safetensors file ({exc})") from exc
        self._keys = list(self._reader.entries)
        self._shapes = {k: e.shape for k, e in self._reader.entries.items()}
        self.metadata = self._reader.metadata
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
        self._mapped = mmap
        self._keys = list(self._tensors)
        self._shapes = {k: tuple(v.shape) for k, v in self._tensors.items()}
        self.metadata = {}

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return self._shapes

    def __getitem__(self, key: str) -> torch.Tensor:
        """The tensor in memory of its own (never a view of a file mapping: a file replaced on disk cannot change
        a loaded model, and only what is kept counts towards the process' memory)."""
        return self.read_as(key, lambda stored: stored)

    def read_as(self, key: str, pick: Callable[[torch.dtype], torch.dtype]) -> torch.Tensor:
        """The tensor cast to `pick(its stored dtype)` as it is read: one pass over its bytes, not a read then a
        cast."""
        if self._tensors is not None:
            tensor = self._tensors[key]
            target = pick(tensor.dtype)
            if target != tensor.dtype:
                return tensor.to(target)
            return tensor.clone() if self._mapped else tensor
        if key not in self._shapes:
            raise KeyError(key)
        try:
            return self._reader.read(key, pick(self._reader.entries[key].dtype))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{self.path.name}: cannot read tensor {key!r} ({exc})") from exc

    def __contains__(self, key: object) -> bool:
        return key in self._shapes  # Mapping's own would read the tensor to find out

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class ShardedTensors(Mapping[str, torch.Tensor]):
    """The tensors of several files seen as one: a diffusers or transformers component stored in shards."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.files = [TensorFile(p) for p in paths]
        self.path = self.files[0].path
        self._owner: dict[str, TensorFile] = {}
        for file in self.files:
            for key in file.shapes:
                if key in self._owner:
                    raise CheckpointError(f"{file.path.name}: tensor {key!r} is also in {self._owner[key].path.name}")
                self._owner[key] = file
        self._shapes = {k: f.shapes[k] for k, f in self._owner.items()}

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return self._shapes

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._owner[key][key]

    def read_as(self, key: str, pick: Callable[[torch.dtype], torch.dtype]) -> torch.Tensor:
        return self._owner[key].read_as(key, pick)

    def __contains__(self, key: object) -> bool:
        return key in self._owner

    def __iter__(self) -> Iterator[str]:
        return iter(self._owner)

    def __len__(self) -> int:
        return len(self._owner)


def component_weights(folder: Path, stem: str) -> ShardedTensors:
    """The weights of one component folder of a pipeline (`transformer/`, `text_encoder_2/`...) as the hub stores
    them: `<stem>.safetensors`, shards listed by `<stem>.safetensors.index.json`, a precision variant
    (`<stem>.fp16.safetensors`) or a pickled `<stem>.bin`; an error naming the folder when none is there."""
    folder = Path(folder)
    indexes = sorted(folder.glob(f"{stem}.safetensors.index*.json"), key=lambda p: (len(p.name), p.name))
    if indexes:
        try:
            weight_map = json.loads(indexes[0].read_text())["weight_map"]
            shards = list(dict.fromkeys(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{folder.name}/{indexes[0].name}: not a readable shard index ({exc})") from exc
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing or not shards:
            raise CheckpointError(f"{folder.name}/: the shard index lists missing files: {', '.join(missing)}")
        return ShardedTensors([folder / s for s in shards])
    variants = sorted(folder.glob(f"{stem}.*.safetensors"))
    for candidate in (folder / f"{stem}.safetensors", *variants[:1], folder / f"{stem}.bin"):
        if candidate.is_file():
            return ShardedTensors([candidate])
    raise CheckpointError(f"{folder.name}/: no weights ({stem}.safetensors, its shards or {stem}.bin) in {folder}")


def build_empty(factory: Any) -> nn.Module:
    """Construct a module with parameters on the meta device (buffers stay real); `factory()` builds it."""
    accelerate = offline.accelerate()
    with accelerate.init_empty_weights(include_buffers=False):
        return factory()


def assign_weights(
    module: nn.Module, state: Mapping[str, torch.Tensor], what: str, dtype: torch.dtype, keep_file_dtype: bool = False
) -> nn.Module:
    """Give an empty module its tensors; a missing or extra tensor is an error naming the component.

    Tensors (read into memory of their own by TensorFile) are cast to the compute `dtype`, or, with
    `keep_file_dtype`, kept in the file's own 16-bit dtype, the layers then casting as they run
    (diffusion.precision)."""
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
    shape_of = getattr(state, "shape", None)
    for key in state:
        shape = shape_of(key) if shape_of is not None else tuple(state[key].shape)
        if shape != tuple(expected[key].shape):
            raise CheckpointError(f"{what}: tensor {key} has shape {shape}, expected {tuple(expected[key].shape)}")

    def pick(stored: torch.dtype) -> torch.dtype:
        return storage_dtype(stored, dtype, keep_file_dtype) if stored.is_floating_point else stored

    read_as = getattr(state, "read_as", None)  # files cast as they read (TensorFile, Renamed over one)
    loaded = {}
    for key in state:  # read and cast one tensor at a time: the file's dtype and the compute dtype never both whole
        if read_as is not None:
            loaded[key] = read_as(key, pick)
        else:
            tensor = state[key]
            loaded[key] = tensor.to(pick(tensor.dtype))
    module.load_state_dict(loaded, strict=True, assign=True)
    if any(t.is_floating_point() and t.dtype != dtype for t in loaded.values()):
        cast_per_layer(module, dtype)
    return module.eval().requires_grad_(False)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a small model file (LoRA, ControlNet, upscaler), read at once; errors name the file."""
    tensors = TensorFile(path)
    return {key: tensors[key] for key in tensors}
