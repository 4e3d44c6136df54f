"""`comfy.model_management` for node packs: devices and dtypes, memory, and interrupt checks.

Devices and dtypes are Loom's model manager's (diffusion.memory.ModelManager: one compute device and working
dtype, the CPU to offload to). `load_models_gpu` makes Loom models (or a ModelPatcher around one) resident
through that manager and moves a pack's own modules to the compute device. Interrupts act on the job of the
node that calls them (through its context); outside a node, `interrupt_current_processing` stops whatever job
is running when the server has bound its interrupt hook. torch is imported only when a function needs it.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterable
from typing import Any

from compat.host import bound
from compat.surface import complete, resolve
from engine.context import Interrupted, current_context

InterruptProcessingException = Interrupted
XFORMERS_IS_AVAILABLE = False
XFORMERS_ENABLED_VAE = False


class VRAMState(enum.Enum):
    DISABLED = 0
    NO_VRAM = 1
    LOW_VRAM = 2
    NORMAL_VRAM = 3
    HIGH_VRAM = 4
    SHARED = 5


class CPUState(enum.Enum):
    GPU = 0
    CPU = 1
    MPS = 2


def get_torch_device() -> Any:
    import torch

    host = bound()
    if host is not None and host.cpu:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def intermediate_device() -> Any:
    import torch

    return torch.device("cpu")


def soft_empty_cache(force: bool = False) -> None:
    """Hand cached GPU memory back; does nothing (and imports nothing) when torch was never loaded."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def throw_exception_if_processing_interrupted() -> None:
    ctx = current_context()
    if ctx is not None:
        ctx.check_interrupt()


def processing_interrupted() -> bool:
    ctx = current_context()
    return ctx is not None and ctx.control.interrupted


def interrupt_current_processing(value: bool = True) -> None:
    ctx = current_context()
    if ctx is not None:
        if value:
            ctx.control.interrupt()
        else:
            ctx.control.interrupt_event.clear()
        return
    host = bound()
    if value and host is not None and host.interrupt is not None:
        host.interrupt()


def _manager() -> Any:
    from nodes.shared import model_manager

    host = bound()
    return model_manager(host.env if host is not None else None)


def unet_offload_device() -> Any:
    return _manager().offload_device


def unet_inital_load_device(parameters: int = 0, dtype: Any = None) -> Any:
    return _manager().offload_device


def unet_dtype(device: Any = None, model_params: int = 0, supported_dtypes: Any = None, **kwargs: Any) -> Any:
    return _manager().dtype


def unet_manual_cast(weight_dtype: Any, inference_device: Any, supported_dtypes: Any = None) -> None:
    """None: Loom runs weights in its working dtype, it never casts per layer."""
    return None


def text_encoder_device() -> Any:
    return _manager().device


def text_encoder_offload_device() -> Any:
    return _manager().offload_device


def text_encoder_initial_device(load_device: Any, offload_device: Any, model_size: int = 0) -> Any:
    return offload_device


def text_encoder_dtype(device: Any = None) -> Any:
    return _manager().dtype


def vae_device() -> Any:
    return _manager().device


def vae_offload_device() -> Any:
    return _manager().offload_device


def vae_dtype(device: Any = None, allowed_dtypes: Any = None) -> Any:
    return _manager().dtype


def should_use_fp16(device: Any = None, model_params: int = 0, prioritize_performance: bool = True, **kw: Any) -> bool:
    import torch

    return bool(_manager().dtype == torch.float16)


def should_use_bf16(device: Any = None, model_params: int = 0, prioritize_performance: bool = True, **kw: Any) -> bool:
    import torch

    return bool(_manager().dtype == torch.bfloat16)


def is_device_cpu(device: Any) -> bool:
    return getattr(device, "type", device) == "cpu"


def is_device_mps(device: Any) -> bool:
    return getattr(device, "type", device) == "mps"


def is_device_cuda(device: Any) -> bool:
    return getattr(device, "type", device) == "cuda"


def cpu_mode() -> bool:
    return is_device_cpu(get_torch_device())


def mps_mode() -> bool:
    return is_device_mps(get_torch_device())


def xformers_enabled() -> bool:
    return False


def xformers_enabled_vae() -> bool:
    return False


def pytorch_attention_enabled() -> bool:
    """Loom's models attend through torch's scaled_dot_product_attention."""
    return True


def get_autocast_device(device: Any) -> str:
    return str(getattr(device, "type", "cuda"))


def get_torch_device_name(device: Any) -> str:
    import torch

    if getattr(device, "type", None) == "cuda":
        return f"{device} {torch.cuda.get_device_name(device)}"
    return str(device)


def get_free_memory(device: Any = None, torch_free_too: bool = False) -> Any:
    """Free bytes on `device` (the compute device by default): CUDA's own figure, or free RAM for the CPU."""
    import psutil
    import torch

    device = device if device is not None else get_torch_device()
    if getattr(device, "type", None) == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        return (free, free) if torch_free_too else free
    free = psutil.virtual_memory().available
    return (free, free) if torch_free_too else free


def get_total_memory(device: Any = None, torch_total_too: bool = False) -> Any:
    import psutil
    import torch

    device = device if device is not None else get_torch_device()
    total = (
        torch.cuda.mem_get_info(device)[1] if getattr(device, "type", None) == "cuda" else psutil.virtual_memory().total
    )
    return (total, total) if torch_total_too else total


def dtype_size(dtype: Any) -> int:
    import torch

    return int(torch.empty((), dtype=dtype).element_size())


def module_size(module: Any) -> int:
    return int(sum(t.nelement() * t.element_size() for t in module.state_dict().values()))


def cast_to_device(tensor: Any, device: Any, dtype: Any, copy: bool = False) -> Any:
    return tensor.to(device=device, dtype=dtype, copy=copy)


def load_models_gpu(models: Iterable[Any], memory_required: int = 0, force_patch_weights: bool = False, **kw: Any):
    """Make models resident on the compute device: Loom's (also inside a ModelPatcher) through its manager, a
    pack's own modules (a ModelPatcher's `.model`) by moving them."""
    manager = _manager()
    for item in models:
        loom = item.loom_model() if callable(getattr(type(item), "loom_model", None)) else item
        unet = getattr(loom, "unet", None)
        if unet is not None:
            loom.manager.load([unet])
            continue
        module = getattr(item, "model", item)
        if not hasattr(module, "to"):
            raise TypeError(f"load_models_gpu: cannot place a {type(item).__name__} on a device")
        module.to(getattr(item, "load_device", None) or manager.device)


def load_model_gpu(model: Any) -> None:
    load_models_gpu([model])


def free_memory(memory_required: int, device: Any, keep_loaded: Any = ()) -> None:
    """Loom frees model memory as it loads; asked explicitly, it hands cached GPU memory back."""
    soft_empty_cache()


def unload_all_models() -> None:
    host = bound()
    if host is not None and host.env is not None:
        host.env.unload_models()
    soft_empty_cache()


def cleanup_models(keep_clone_weights_loaded: bool = False) -> None:
    """Nothing to clean: Loom's manager tracks its models itself."""
    return None


complete(globals())


def is_nvidia() -> bool:
    import torch

    return bool(torch.version.cuda) and torch.cuda.is_available() and is_device_cuda(get_torch_device())


def is_amd() -> bool:
    import torch

    return bool(getattr(torch.version, "hip", None)) and is_device_cuda(get_torch_device())


def is_intel_xpu() -> bool:
    return getattr(get_torch_device(), "type", None) == "xpu"


def directml_enabled() -> bool:
    return False


def _live(name: str) -> Any:
    """Module values the reference sets at start-up, computed here on first read (they need torch)."""
    import torch

    if name == "OOM_EXCEPTION":
        return torch.cuda.OutOfMemoryError
    device = get_torch_device()
    if name == "vram_state":
        return VRAMState.DISABLED if is_device_cpu(device) else VRAMState.NORMAL_VRAM
    if name == "cpu_state":
        return CPUState.CPU if is_device_cpu(device) else CPUState.MPS if is_device_mps(device) else CPUState.GPU
    if name == "total_vram":
        return get_total_memory(device) / (1024 * 1024)
    if name == "total_ram":
        import psutil

        return psutil.virtual_memory().total / (1024 * 1024)
    raise AttributeError(name)


def __getattr__(name: str) -> Any:
    if name in ("OOM_EXCEPTION", "vram_state", "cpu_state", "total_vram", "total_ram"):
        return _live(name)
    return resolve(globals(), name)
