"""Real workflows on a real tiny single-file checkpoint, run by the engine's executor (for the LoRA/ControlNet tests).

`txt2img` builds CheckpointLoaderSimple -> [LoraLoader ...] -> CLIPTextEncode -> [ControlNetApplyAdvanced] ->
KSampler -> VAEDecode/SaveLatent in the API format; `Flows.run` validates and executes one and returns the outcome,
the events emitted and the sampled latent (read back from the SaveLatent file); `kohya_lora` and
`matching_controlnet` make model files that fit the tiny checkpoint.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

import nodes
from diffusion.ldm_names import ldm_state_dict_names
from diffusion.tiny import TinyModules, build_tiny, tiny_spec, write_checkpoint
from engine.cache import OutputCache
from engine.environment import NodeEnvironment
from engine.executor import Executor, RunOutcome
from engine.folders import Folders
from engine.registry import NodeRegistry
from engine.signature import Signer
from engine.validate import validate
from engine.workflow import parse_api
from nodes.shared import node_environment

CHECKPOINT = "tiny-sd1.safetensors"
LOADER = "1"
SAMPLER = "6"


def txt2img(
    prompt: str = "a red fox",
    loras: tuple[tuple[str, float, float], ...] = (),
    control: dict[str, Any] | None = None,
    prefix: str = "run",
) -> dict[str, Any]:
    """The API workflow; each LoRA is (file, strength_model, strength_clip) chained in order. `control` holds
    ControlNetApplyAdvanced's widgets plus `loader` ("ControlNetLoader" or "DiffControlNetLoader") and `name`."""
    flow: dict[str, Any] = {LOADER: {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}}}
    model, clip = [LOADER, 0], [LOADER, 1]
    for i, (name, strength_model, strength_clip) in enumerate(loras):
        node_id = f"lora{i}"
        flow[node_id] = {
            "class_type": "LoraLoader",
            "inputs": {
                "model": model,
                "clip": clip,
                "lora_name": name,
                "strength_model": strength_model,
                "strength_clip": strength_clip,
            },
        }
        model, clip = [node_id, 0], [node_id, 1]
    flow["3"] = {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": clip}}
    flow["4"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": clip}}
    flow["5"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    positive, negative = ["3", 0], ["4", 0]
    if control is not None:
        widgets = dict(control)
        loader, name = widgets.pop("loader"), widgets.pop("name")
        inputs: dict[str, Any] = {"control_net_name": name}
        if loader == "DiffControlNetLoader":
            inputs["model"] = model
        flow["cn"] = {"class_type": loader, "inputs": inputs}
        flow["hint"] = {"class_type": "LoadImage", "inputs": {"image": "hint.png"}}
        flow["apply"] = {
            "class_type": "ControlNetApplyAdvanced",
            "inputs": {"positive": positive, "negative": negative, "control_net": ["cn", 0], "image": ["hint", 0]}
            | widgets,
        }
        positive, negative = ["apply", 0], ["apply", 1]
    flow[SAMPLER] = {
        "class_type": "KSampler",
        "inputs": {
            "model": model,
            "seed": 3,
            "steps": 2,
            "cfg": 5.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "positive": positive,
            "negative": negative,
            "latent_image": ["5", 0],
            "denoise": 1.0,
        },
    }
    flow["7"] = {"class_type": "VAEDecode", "inputs": {"samples": [SAMPLER, 0], "vae": [LOADER, 2]}}
    flow["8"] = {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}}
    flow["9"] = {
        "class_type": "SaveLatent",
        "inputs": {"samples": [SAMPLER, 0], "filename_prefix": f"latents/{prefix}"},
    }
    return flow


@dataclass
class Result:
    outcome: RunOutcome
    events: list[Any]
    latent: torch.Tensor | None


@dataclass
class Flows:
    """A Loom environment holding the tiny checkpoint, its registry and one executor (one shared cache)."""

    env: NodeEnvironment
    registry: NodeRegistry
    modules: TinyModules
    executor: Executor = field(init=False)

    def __post_init__(self) -> None:
        self.executor = Executor(self.registry, env=self.env)

    @classmethod
    def create(cls, root: Any) -> Flows:
        folders = Folders.under(root)
        folders.ensure()
        modules = build_tiny(tiny_spec("sd1"), seed=7)
        write_checkpoint(folders.model_dirs("checkpoints")[0] / CHECKPOINT, modules)
        env = node_environment(folders, force_cpu=True)
        registry = NodeRegistry(env)
        nodes.register_builtin(registry)
        return cls(env, registry, modules)

    def folder(self, kind: str) -> Any:
        return self.env.folders.model_dirs(kind)[0]

    def run(self, flow: dict[str, Any]) -> Result:
        workflow = parse_api(copy.deepcopy(flow))
        checked = validate(workflow, self.registry)
        assert checked.ok, checked.to_response()
        events: list[Any] = []
        outcome = self.executor.run(workflow, outputs=checked.outputs, prompt_id="p", emit=events.append)
        assert outcome.status == "success", outcome.error
        latent = None
        if "9" in outcome.outputs:  # a cached SaveLatent still names the file it wrote
            saved = outcome.outputs["9"]["latents"][0]
            path = self.env.folders.output / saved["subfolder"] / saved["filename"]
            latent = load_file(str(path))["latent_tensor"]
        return Result(outcome, events, latent)

    def keep_only_the_checkpoint(self, flow: dict[str, Any]) -> None:
        """Drop every cache entry but the loaded checkpoint's, so the next run recomputes everything from the very
        model objects the earlier runs used."""
        workflow = parse_api(copy.deepcopy(flow))
        specs = {n.class_type: self.registry.get(n.class_type) for n in workflow.nodes.values()}
        key = Signer(workflow, specs)(LOADER)
        entry = self.executor.cache.get(key)
        assert entry is not None
        fresh = OutputCache()
        fresh.put(key, entry.outputs, entry.ui)
        self.executor = Executor(self.registry, fresh, env=self.env)


# -- model files matching the tiny checkpoint ------------------------------------------------------------------


def kohya_lora(modules: Any, seed: int, rank: int = 2) -> dict[str, torch.Tensor]:
    """A kohya-format LoRA for every linear and conv layer of the tiny checkpoint: UNet keys in the LDM spelling,
    text-encoder keys under `lora_te_text_model_`, plus one key that names no layer."""
    from diffusion.ldm_names import ldm_module_names

    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    ldm = ldm_module_names(modules.unet)
    layers = [("lora_unet_" + ldm[n], m) for n, m in modules.unet.named_modules() if n in ldm]
    for name, m in modules.text[0].named_modules():
        layers.append(("lora_te_" + (name if name.startswith("text_model.") else f"text_model.{name}"), m))
    for stem, layer in layers:
        if isinstance(layer, nn.Linear):
            down, up = (rank, layer.in_features), (layer.out_features, rank)
        elif isinstance(layer, nn.Conv2d):
            down = (rank, layer.in_channels, *layer.kernel_size)
            up = (layer.out_channels, rank, 1, 1)
        else:
            continue
        key = stem.replace(".", "_")
        sd[key + ".lora_down.weight"] = torch.randn(down, generator=gen) * 0.3
        sd[key + ".lora_up.weight"] = torch.randn(up, generator=gen) * 0.3
    sd["lora_unet_not_a_layer.lora_down.weight"] = torch.zeros(rank, 4)
    sd["lora_unet_not_a_layer.lora_up.weight"] = torch.zeros(4, rank)
    return sd


def matching_controlnet(unet: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A ControlNet copied from the tiny checkpoint's UNet whose zero-initialised output convs are perturbed."""
    from diffusers import ControlNetModel

    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 16, 16))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding")):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.3)
            elif name.startswith(("down_blocks.1.", "mid_block.")):  # trained away from the UNet it came from
                param.add_(torch.randn(param.shape, generator=gen) * 0.01)
    return net.eval()


def ldm_controlnet(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A ControlNet's tensors as a single-file (LDM layout) ControlNet holds them."""
    names = ldm_state_dict_names(net)
    return {"control_model." + names[k]: v.contiguous() for k, v in net.state_dict().items()}
