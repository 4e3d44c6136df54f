"""FLUX and SD3 ControlNet workflows through the executor: the example flux/sd3 workflows on the demo files, with
stand-in ControlNets (tests/diffusion/tiny_dit_controlnets.py) loaded by ControlNetLoader and applied with
ControlNetApplyAdvanced, ControlNetApplySD3 and SetUnionControlNetType; a ControlNet of the wrong family fails the
run with an error naming the node that applied it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import nodes
from diffusion.demo_dit import DIT_DEMO_MODELS, write_dit_demo_model
from engine.executor import Executor, RunOutcome
from engine.registry import NodeRegistry
from engine.validate import validate
from engine.workflow import parse_api
from nodes.shared import node_environment
from tests.diffusion.tiny_dit_controlnets import (
    flux_controlnet_state,
    sd3_controlnet_state,
    sd35_controlnet_state,
    write,
)

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
LATENT, SAMPLER, VAE, POSITIVE, NEGATIVE = "7", "8", "3", "5", "6"


class Runs:
    def __init__(self, root: Path) -> None:
        from engine.folders import Folders

        folders = Folders.under(root)
        folders.ensure()
        for model in DIT_DEMO_MODELS:
            write_dit_demo_model(model, folders.model_dirs(model.folder)[0])
        controlnets = folders.model_dirs("controlnet")[0]
        write(controlnets / "flux-canny.safetensors", flux_controlnet_state())
        write(controlnets / "flux-union-pro.safetensors", flux_controlnet_state(double=2, single=0, modes=10))
        write(controlnets / "sd3-canny.safetensors", sd3_controlnet_state())
        write(controlnets / "sd3.5_large_controlnet_depth.safetensors", sd35_controlnet_state())
        pixels = (torch.rand(48, 64, 3, generator=torch.Generator().manual_seed(4)) * 255).to(torch.uint8)
        Image.fromarray(pixels.numpy()).save(folders.input / "hint.png")
        self.env = node_environment(folders, force_cpu=True)
        self.registry = NodeRegistry(self.env)
        nodes.register_builtin(self.registry)
        self.executor = Executor(self.registry, env=self.env)

    def run(self, flow: dict[str, Any]) -> tuple[RunOutcome, torch.Tensor | None]:
        workflow = parse_api(copy.deepcopy(flow))
        checked = validate(workflow, self.registry)
        assert checked.ok, checked.to_response()
        outcome = self.executor.run(workflow, outputs=checked.outputs, prompt_id="p", emit=lambda _e: None)
        if outcome.status != "success":
            return outcome, None
        saved = outcome.outputs["save_latent"]["latents"][0]
        path = self.env.folders.output / saved["subfolder"] / saved["filename"]
        return outcome, load_file(str(path))["latent_tensor"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(tmp_path_factory.mktemp("dit-controlnet"))


def example(name: str, prefix: str) -> dict[str, Any]:
    """The example workflow, small (64x64, 2 steps), saving its latent."""
    flow = json.loads((WORKFLOWS / f"{name}.api.json").read_text())
    flow[LATENT]["inputs"].update(width=64, height=64)
    flow[SAMPLER]["inputs"]["steps"] = 2
    flow["save_latent"] = {
        "class_type": "SaveLatent",
        "inputs": {"samples": [SAMPLER, 0], "filename_prefix": f"latents/{prefix}"},
    }
    return flow


def add_control(
    flow: dict[str, Any], tag: str, file: str, apply: str = "ControlNetApplyAdvanced", **extra: Any
) -> None:
    """Load `file`, optionally set its union type, apply it on the sampler's conditionings (chained on any
    ControlNet applied before)."""
    flow[f"{tag}_load"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": file}}
    net = [f"{tag}_load", 0]
    if "union_type" in extra:
        inputs = {"control_net": net, "type": extra.pop("union_type")}
        flow[f"{tag}_type"] = {"class_type": "SetUnionControlNetType", "inputs": inputs}
        net = [f"{tag}_type", 0]
    flow.setdefault("hint", {"class_type": "LoadImage", "inputs": {"image": "hint.png"}})
    sampler = flow[SAMPLER]["inputs"]
    flow[tag] = {
        "class_type": apply,
        "inputs": {"positive": sampler["positive"], "negative": sampler["negative"], "control_net": net,
                   "image": ["hint", 0], "vae": [VAE, 0], "strength": 0.8, "start_percent": 0.0,
                   "end_percent": 1.0} | extra,
    }  # fmt: skip
    sampler["positive"], sampler["negative"] = [tag, 0], [tag, 1]


def test_flux_workflow_with_a_controlnet_and_a_union_controlnet(runs: Runs) -> None:
    outcome, plain = runs.run(example("flux", "flux-plain"))
    assert outcome.status == "success" and plain is not None
    flow = example("flux", "flux-control")
    add_control(flow, "canny", "flux-canny.safetensors")
    _, controlled = runs.run(flow)
    add_control(flow, "union", "flux-union-pro.safetensors", union_type="depth")
    flow["save_latent"]["inputs"]["filename_prefix"] = "latents/flux-union"
    _, chained = runs.run(flow)
    assert controlled is not None and chained is not None
    assert controlled.shape == plain.shape == (1, 16, 8, 8)
    assert not torch.allclose(controlled, plain) and not torch.allclose(chained, controlled)


def test_sd3_workflow_with_apply_controlnet_with_vae(runs: Runs) -> None:
    _, plain = runs.run(example("sd3", "sd3-plain"))
    flow = example("sd3", "sd3-control")
    add_control(flow, "instantx", "sd3-canny.safetensors", apply="ControlNetApplySD3")
    add_control(flow, "depth", "sd3.5_large_controlnet_depth.safetensors", start_percent=0.5)
    outcome, controlled = runs.run(flow)
    assert outcome.status == "success" and plain is not None and controlled is not None
    assert torch.isfinite(controlled).all() and not torch.allclose(controlled, plain)
    flow["instantx"]["inputs"]["strength"] = 0.0
    flow["depth"]["inputs"]["strength"] = 0.0
    flow["save_latent"]["inputs"]["filename_prefix"] = "latents/sd3-zero"
    _, zero = runs.run(flow)
    assert zero is not None and torch.equal(zero, plain)


def test_a_controlnet_of_the_wrong_family_fails_the_run_naming_the_node(runs: Runs) -> None:
    flow = example("flux", "flux-wrong")
    add_control(flow, "wrong", "sd3-canny.safetensors", apply="ControlNetApplySD3")
    outcome, _ = runs.run(flow)
    assert outcome.status == "error" and outcome.error is not None
    assert outcome.error.node_id == SAMPLER
    assert "ControlNetApplySD3: this is a SD3 ControlNet; it cannot guide a flux transformer" in (
        outcome.error.exception_message
    )
