"""`comfy.cli_args` for node packs: `args`, the reference's parsed command line, answered with Loom's settings.

Packs read a few flags at import (`args.preview_method`, `args.disable_metadata`, `args.cpu`, ...). Loom's own
settings fill those it has (the compute device, the preview method, folders); every other flag has the
reference's default, which is what a pack would see on a reference started without that flag.
"""

from __future__ import annotations

import enum
from argparse import Namespace
from typing import Any

from compat.host import bound


class LatentPreviewMethod(enum.StrEnum):
    NoPreviews = "none"
    Auto = "auto"
    Latent2RGB = "latent2rgb"
    TAESD = "taesd"


class PerformanceFeature(enum.StrEnum):
    Fp16Accumulation = "fp16_accumulation"
    Fp8MatrixMultiplication = "fp8_matrix_mult"
    CublasOps = "cublas_ops"


_FLAGS: dict[str, Any] = {
    "listen": "127.0.0.1",
    "port": 8188,
    "tls_keyfile": None,
    "tls_certfile": None,
    "enable_cors_header": None,
    "max_upload_size": 100,
    "base_directory": None,
    "extra_model_paths_config": None,
    "output_directory": None,
    "temp_directory": None,
    "input_directory": None,
    "user_directory": None,
    "auto_launch": False,
    "disable_auto_launch": False,
    "cuda_device": None,
    "cuda_malloc": False,
    "disable_cuda_malloc": False,
    "force_fp32": False,
    "force_fp16": False,
    "fp32_unet": False,
    "fp64_unet": False,
    "bf16_unet": False,
    "fp16_unet": False,
    "fp8_e4m3fn_unet": False,
    "fp8_e5m2_unet": False,
    "fp16_vae": False,
    "fp32_vae": False,
    "bf16_vae": False,
    "cpu_vae": False,
    "fp8_e4m3fn_text_enc": False,
    "fp8_e5m2_text_enc": False,
    "fp16_text_enc": False,
    "fp32_text_enc": False,
    "force_channels_last": False,
    "directml": None,
    "disable_ipex_optimize": False,
    "preview_method": LatentPreviewMethod.Auto,
    "preview_size": 512,
    "cache_classic": False,
    "cache_lru": 0,
    "cache_none": False,
    "use_split_cross_attention": False,
    "use_quad_cross_attention": False,
    "use_pytorch_cross_attention": False,
    "use_sage_attention": False,
    "use_flash_attention": False,
    "disable_xformers": False,
    "force_upcast_attention": False,
    "dont_upcast_attention": False,
    "gpu_only": False,
    "highvram": False,
    "normalvram": False,
    "lowvram": False,
    "novram": False,
    "cpu": False,
    "reserve_vram": None,
    "default_hashing_function": "sha256",
    "disable_smart_memory": False,
    "deterministic": False,
    "fast": set(),
    "dont_print_server": False,
    "quick_test_for_ci": False,
    "windows_standalone_build": False,
    "disable_metadata": False,
    "disable_all_custom_nodes": False,
    "multi_user": False,
    "verbose": "INFO",
    "log_stdout": False,
    "front_end_version": "comfyanonymous/ComfyUI@latest",
    "front_end_root": None,
    "user_directory_root": None,
    "enable_compress_response_body": False,
    "disable_api_nodes": False,
}


def _current() -> Namespace:
    values = dict(_FLAGS)
    host = bound()
    if host is not None:
        values["cpu"] = host.cpu
        folders = host.folders
        values.update(
            base_directory=str(folders.base),
            output_directory=str(folders.output),
            input_directory=str(folders.input),
            temp_directory=str(folders.temp),
            user_directory=str(folders.user),
        )
        method = host.env.preview_method if host.env is not None else None
        if method in {m.value for m in LatentPreviewMethod}:
            values["preview_method"] = LatentPreviewMethod(method)
    return Namespace(**values)


args = _current()


def __getattr__(name: str) -> Any:
    from compat.host import refuse

    refuse("comfy.cli_args", name)
