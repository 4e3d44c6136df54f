"""A tiny SD 1.x model with self-attention at every depth (the demo's has none at full resolution), its prompts,
and a KSampler run, for the UNet-patch and guidance tests; and a check that a model's module is left as it was."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from diffusion.memory import ModelManager
from diffusion.model import DiffusionModel
from diffusion.schedulers import DiscreteSchedule
from diffusion.tiny import build_tiny, tiny_spec
from tests.diffusion.tiny_sampling import sample_latent


def attention_model(manager: ModelManager) -> DiffusionModel:
    spec = tiny_spec("sd1")
    spec = replace(spec, unet=replace(spec.unet, attention=(True, True), transformer_depth=(1, 1)))
    unet = build_tiny(spec, seed=3).unet
    schedule = DiscreteSchedule.scaled_linear(0.00085, 0.012, 1000)
    return DiffusionModel(unet, "sd1", "eps", schedule, manager, ((0.0, 0.0, 0.0),) * 4)


def prompts(width: int = 32) -> tuple[list[Any], list[Any]]:
    """A positive and a negative conditioning of random token embeddings."""
    gen = torch.Generator().manual_seed(11)
    positive = torch.randn(1, 7, width, generator=gen)
    negative = torch.randn(1, 7, width, generator=gen) * 0.5
    return [[positive, {}]], [[negative, {}]]


def run(model: DiffusionModel, size: int = 8, **overrides: Any) -> torch.Tensor:
    """A short KSampler run on a `size` x `size` latent."""
    positive, negative = prompts()
    request = {"seed": 2, "steps": 3, "cfg": 4.0, "latent": {"samples": torch.zeros(1, 4, size, size)}}
    return sample_latent(model, positive, negative, **(request | overrides))


def module_state(model: DiffusionModel) -> tuple[dict[str, torch.Tensor], list[Any], int]:
    """Weights (copied), attention processors and hook count of the model's module, to compare after a run."""
    unet = model.unet
    weights = {k: v.clone() for k, v in unet.state_dict().items()}
    processors = list(unet.attn_processors.values())
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in unet.modules())
    return weights, processors, hooks


def assert_untouched(model: DiffusionModel, before: tuple[dict[str, torch.Tensor], list[Any], int]) -> None:
    weights, processors, hooks = module_state(model)
    assert weights.keys() == before[0].keys()
    assert all(torch.equal(weights[k], before[0][k]) for k in weights)
    assert all(a is b for a, b in zip(processors, before[1], strict=True))
    assert hooks == before[2]
