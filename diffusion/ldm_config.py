"""The original latent-diffusion YAML configs (`v1-inference.yaml`, `v2-inference-v.yaml`, ...) that older
workflows pair with a checkpoint (CheckpointLoader's `config_name`).

A checkpoint's tensors already say its architecture (diffusion.detect), so of a config Loom takes only what the
tensors cannot say: the prediction target (`parameterization: "v"`) and the text encoder layer
(`cond_stage_config.params.layer_idx` with `layer: "hidden"`, the "clip skip 2" configs). Precision settings
(`use_fp16`, the `_fp16`/`_fp32` variants) are Loom's `--precision` choice and are not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config file that is not a latent-diffusion model config."""


@dataclass(frozen=True)
class LdmConfig:
    """What a config overrides: the prediction target ("eps" or "v") and the text encoder layer (None: keep)."""

    prediction: str = "eps"
    clip_layer: int | None = None


# The configs the reference ships in models/configs, known by name so workflows naming them load without the files.
STOCK_CONFIGS: dict[str, LdmConfig] = {
    "anything_v3.yaml": LdmConfig(clip_layer=-2),
    "v1-inference.yaml": LdmConfig(),
    "v1-inference_clip_skip_2.yaml": LdmConfig(clip_layer=-2),
    "v1-inference_clip_skip_2_fp16.yaml": LdmConfig(clip_layer=-2),
    "v1-inference_fp16.yaml": LdmConfig(),
    "v1-inpainting-inference.yaml": LdmConfig(),
    "v2-inference-v.yaml": LdmConfig(prediction="v"),
    "v2-inference-v_fp32.yaml": LdmConfig(prediction="v"),
    "v2-inference.yaml": LdmConfig(),
    "v2-inference_fp32.yaml": LdmConfig(),
    "v2-inpainting-inference.yaml": LdmConfig(),
}


def _mapping(value: Any, where: str, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: {where} is not a mapping")
    return value


def parse_ldm_config(text: str, name: str = "config") -> LdmConfig:
    """The overrides of a latent-diffusion YAML config (`model.params.parameterization`, the cond stage's layer)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML ({exc})") from exc
    model = _mapping(data, "the file", name).get("model")
    if not isinstance(model, dict) or "params" not in model:
        raise ConfigError(f"{name}: not a latent-diffusion config (no model.params)")
    params = _mapping(model["params"], "model.params", name)
    parameterization = params.get("parameterization", "eps")
    if parameterization not in ("eps", "v"):
        raise ConfigError(f"{name}: parameterization {parameterization!r} is not eps or v")
    cond = _mapping(params.get("cond_stage_config"), "model.params.cond_stage_config", name)
    cond_params = _mapping(cond.get("params"), "cond_stage_config.params", name)
    layer = None
    if cond_params.get("layer") == "hidden":
        layer = int(cond_params.get("layer_idx", -1))
    return LdmConfig(prediction=parameterization, clip_layer=layer)


def read_ldm_config(name: str, path: Path | None) -> LdmConfig:
    """A config file's overrides; a stock config's by name when no such file is present."""
    if path is not None:
        return parse_ldm_config(path.read_text(encoding="utf-8"), name)
    if name in STOCK_CONFIGS:
        return STOCK_CONFIGS[name]
    raise ConfigError(f"{name!r} is neither a file in models/configs nor one of the stock configs")
