"""`comfy.utils` for node packs: `ProgressBar` (through the running node's context), model file reading
(`load_torch_file`, through Loom's checkpoint reader), resizing (`common_upscale`, Loom's resize code) and the
small state-dict and batch helpers. torch is imported only when a function needs it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from compat.previews import encode_preview
from compat.surface import complete, resolve
from engine.context import NodeContext, current_context

PROGRESS_BAR_ENABLED = True


class ProgressBar:
    """Steps done of `total`, sent as the node's `progress` events; an interrupted job stops at the next update.

    The node context is captured when the bar is made, so updates from a worker thread the node started still
    reach the right node.
    """

    def __init__(self, total: int, node_id: str | None = None) -> None:
        self.total = total
        self.current = 0
        self._ctx: NodeContext | None = current_context()

    def update_absolute(self, value: float, total: float | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total) if self.total else value
        ctx = self._ctx or current_context()
        if ctx is not None:
            ctx.progress(self.current, self.total, encode_preview(preview))

    def update(self, value: float) -> None:
        self.update_absolute(self.current + value)


def set_progress_bar_enabled(enabled: bool) -> None:
    global PROGRESS_BAR_ENABLED
    PROGRESS_BAR_ENABLED = enabled


PROGRESS_BAR_HOOK: Callable[..., Any] | None = None


def set_progress_bar_global_hook(function: Callable[..., Any] | None) -> None:
    """Kept for packs that install one; Loom reports progress through the node context, not through a hook."""
    global PROGRESS_BAR_HOOK
    PROGRESS_BAR_HOOK = function


def load_torch_file(
    ckpt: str | Path, safe_load: bool = False, device: Any = None, return_metadata: bool = False
) -> Any:
    """Every tensor of a model file (safetensors, or a pickle of plain tensors), optionally moved to `device`."""
    from diffusion.checkpoint import read_tensors

    tensors = read_tensors(Path(ckpt))
    if device is not None:
        tensors = {k: v.to(device) for k, v in tensors.items()}
    if not return_metadata:
        return tensors
    metadata = None
    if Path(ckpt).suffix.lower() in (".safetensors", ".sft"):
        from safetensors import safe_open

        with safe_open(str(ckpt), framework="pt") as handle:
            metadata = handle.metadata()
    return tensors, metadata


def save_torch_file(sd: Mapping[str, Any], ckpt: str | Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(ckpt), metadata=metadata)


def common_upscale(samples: Any, width: int, height: int, upscale_method: str, crop: str) -> Any:
    """Resize a [B, C, H, W] batch with one of the ecosystem's methods (nearest-exact, bilinear, area, bicubic,
    lanczos, bislerp), optionally centre-cropping to the new aspect first ("center")."""
    from nodes.resize import upscale

    return upscale(samples, width, height, upscale_method, crop)


def lanczos(samples: Any, width: int, height: int) -> Any:
    from nodes.resize import lanczos as loom_lanczos

    return loom_lanczos(samples, width, height)


def bislerp(samples: Any, width: int, height: int) -> Any:
    from nodes.resize import bislerp as loom_bislerp

    return loom_bislerp(samples, width, height)


def repeat_to_batch_size(tensor: Any, batch_size: int, dim: int = 0) -> Any:
    if tensor.shape[dim] > batch_size:
        return tensor.narrow(dim, 0, batch_size)
    if tensor.shape[dim] < batch_size:
        repeats = [1] * tensor.ndim
        repeats[dim] = -(-batch_size // tensor.shape[dim])
        return tensor.repeat(*repeats).narrow(dim, 0, batch_size)
    return tensor


def resize_to_batch_size(tensor: Any, batch_size: int) -> Any:
    """Pick (or repeat) items evenly so the batch has `batch_size` items."""
    import torch

    size = tensor.shape[0]
    if size == batch_size:
        return tensor
    index = torch.linspace(0, size - 1, batch_size).round().long() if batch_size > 1 else torch.zeros(1).long()
    return tensor[index.to(tensor.device)]


def state_dict_prefix_replace(
    state_dict: dict[str, Any], replace_prefix: Mapping[str, str], filter_keys: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {} if filter_keys else state_dict
    for old, new in replace_prefix.items():
        for key in [k for k in state_dict if k.startswith(old)]:
            out[new + key[len(old) :]] = state_dict.pop(key)
    return out


def state_dict_key_replace(state_dict: dict[str, Any], keys_to_replace: Mapping[str, str]) -> dict[str, Any]:
    for old, new in keys_to_replace.items():
        if old in state_dict:
            state_dict[new] = state_dict.pop(old)
    return state_dict


def get_attr(obj: Any, attr: str) -> Any:
    return functools.reduce(getattr, attr.split("."), obj)


def set_attr(obj: Any, attr: str, value: Any) -> Any:
    owner_path, _, leaf = attr.rpartition(".")
    owner = get_attr(obj, owner_path) if owner_path else obj
    previous = getattr(owner, leaf)
    setattr(owner, leaf, value)
    return previous


def set_attr_param(obj: Any, attr: str, value: Any) -> Any:
    import torch

    return set_attr(obj, attr, torch.nn.Parameter(value, requires_grad=False))


def copy_to_param(obj: Any, attr: str, value: Any) -> None:
    get_attr(obj, attr).data.copy_(value)


def calculate_parameters(sd: Mapping[str, Any], prefix: str = "") -> int:
    return sum(v.nelement() for k, v in sd.items() if k.startswith(prefix))


def weight_dtype(sd: Mapping[str, Any], prefix: str = "") -> Any:
    counts: dict[Any, int] = {}
    for key, value in sd.items():
        if key.startswith(prefix):
            counts[value.dtype] = counts.get(value.dtype, 0) + value.nelement()
    return max(counts, key=lambda d: counts[d]) if counts else None


complete(globals())


def __getattr__(name: str) -> Any:
    return resolve(globals(), name)
