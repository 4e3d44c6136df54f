from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from diffusion.controlnet import ControlHint
from diffusion.ldm_names import ldm_state_dict_names
from tests.diffusion.tiny_lora_models import tiny_controlnet


def _cond() -> list:
    return [[torch.zeros(1, 3, 16), {"pooled_output": torch.zeros(1, 4)}]]


def test_loader_finds_the_file_and_apply_chains(run: Any, env: Any) -> None:
    net = tiny_controlnet()
    names = ldm_state_dict_names(net)
    folder = env.folders.model_dirs("controlnet")[0]
    save_file({"control_model." + names[k]: v for k, v in net.state_dict().items()}, folder / "tiny.safetensors")
    (loaded,) = run("ControlNetLoader", control_net_name="tiny.safetensors")
    assert torch.equal(loaded.controlnet_mid_block.weight, net.controlnet_mid_block.weight)
    image = torch.rand(1, 16, 16, 3)
    cond = _cond()
    (one,) = run("ControlNetApply", conditioning=cond, control_net=loaded, image=image, strength=0.5)
    assert "control" not in cond[0][1]
    first = one[0][1]["control"]
    assert isinstance(first, ControlHint) and first.strength == 0.5 and first.previous is None
    pos, neg = run(
        "ControlNetApplyAdvanced",
        positive=one,
        negative=cond,
        control_net=loaded,
        image=image,
        strength=1.0,
        start_percent=0.1,
        end_percent=0.6,
    )
    assert pos[0][1]["control"].previous is first and neg[0][1]["control"].previous is None
    assert (pos[0][1]["control"].start_percent, pos[0][1]["control"].end_percent) == (0.1, 0.6)
    assert one[0][1]["control"] is first
    (same,) = run("ControlNetApply", conditioning=cond, control_net=loaded, image=image, strength=0.0)
    assert same is cond


def test_loader_names_a_missing_file(run: Any) -> None:
    with pytest.raises(FileNotFoundError, match="control_net_name"):
        run("ControlNetLoader", control_net_name="nope.safetensors")
