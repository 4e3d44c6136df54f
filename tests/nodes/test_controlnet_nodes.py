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


# -- end to end: single-file LDM ControlNets matching a real tiny checkpoint, through the executor -----------------


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from PIL import Image

    from diffusion.controlnet import UNET_SHARED
    from tests.nodes.tiny_flows import Flows, ldm_controlnet, matching_controlnet

    flows = Flows.create(tmp_path_factory.mktemp("loom"))
    folder = flows.folder("controlnet")
    net = matching_controlnet(flows.modules.unet, 1)
    full = ldm_controlnet(net)
    save_file(full, folder / "full.safetensors")
    base = ldm_controlnet(flows.modules.unet)  # the UNet under the same (prefixed LDM) names
    diff: dict[str, torch.Tensor] = {"difference": torch.tensor(1.0)}
    for key, tensor in full.items():
        shared = base.get(key)
        if shared is None or not key.removeprefix("control_model.").startswith(UNET_SHARED):
            diff[key] = tensor  # hint encoder and zero convs are stored as they are
        elif not torch.equal(tensor, shared):
            diff[key] = tensor - shared  # unchanged shared layers are left out
    assert len(diff) < len(full)
    save_file(diff, folder / "diff.safetensors")
    gen = torch.Generator().manual_seed(5)
    pixels = (torch.rand(48, 48, 3, generator=gen) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(flows.env.folders.input / "hint.png")
    return flows


def _control(strength: float, start: float = 0.0, end: float = 1.0, **extra: Any) -> dict[str, Any]:
    return (
        {"loader": "ControlNetLoader", "name": "full.safetensors", "strength": strength}
        | {
            "start_percent": start,
            "end_percent": end,
        }
        | extra
    )


def test_controlnet_end_to_end_strength_and_schedule_range(flows: Any) -> None:
    from tests.nodes.tiny_flows import txt2img

    base = flows.run(txt2img(prefix="base")).latent
    zero = flows.run(txt2img(control=_control(0.0), prefix="zero")).latent
    assert torch.equal(zero, base)  # strength 0 is no ControlNet, bit for bit
    full = flows.run(txt2img(control=_control(1.0), prefix="full")).latent
    assert not torch.allclose(full, base, atol=1e-3)
    # the two steps sit at 0% and 100% of the schedule: a range between them never acts, [0, 0.3) acts only first
    between = flows.run(txt2img(control=_control(1.0, 0.3, 0.6), prefix="between")).latent
    assert torch.equal(between, base)
    early = flows.run(txt2img(control=_control(1.0, 0.0, 0.3), prefix="early")).latent
    late = flows.run(txt2img(control=_control(1.0, 0.7, 1.0), prefix="late")).latent
    assert not torch.allclose(early, base, atol=1e-3) and not torch.allclose(early, full, atol=1e-3)
    assert not torch.allclose(late, base, atol=1e-3) and not torch.allclose(late, early, atol=1e-3)


def test_deep_shrink_with_a_controlnet_leaves_out_what_does_not_fit_and_warns_once(flows: Any) -> None:
    """The reference skips the ControlNet residuals that Deep Shrink's resized features cannot take, with a
    warning; Loom does too, and says so once per KSampler run (not once per step)."""
    from engine.events import NodeWarning
    from tests.nodes.tiny_flows import LOADER, SAMPLER, txt2img

    def shrunk(end: float, control: bool, steps: int = 3) -> Any:
        flow = txt2img(control=_control(1.0) if control else None, prefix=f"shrink{end}{control}")
        flow["shrink"] = {
            "class_type": "PatchModelAddDownscale",
            "inputs": {"model": [LOADER, 0], "block_number": 1, "downscale_factor": 2.0, "start_percent": 0.0,
                       "end_percent": end, "downscale_after_skip": False, "downscale_method": "bicubic",
                       "upscale_method": "bicubic"},
        }  # fmt: skip
        flow[SAMPLER]["inputs"] |= {"model": ["shrink", 0], "steps": steps}
        result = flows.run(flow)
        warnings = [e for e in result.events if isinstance(e, NodeWarning)]
        return result.latent, [(w.node, w.message) for w in warnings]

    latent, warnings = shrunk(1.0, control=True)  # every step shrinks
    assert latent is not None and bool(torch.isfinite(latent).all())
    assert len(warnings) == 1 and warnings[0][0] == SAMPLER and "PatchModelAddDownscale" in warnings[0][1]
    early, warned = shrunk(0.3, control=True)
    assert len(warned) == 1
    without, quiet = shrunk(0.3, control=False)
    assert not quiet and not torch.allclose(early, without, atol=1e-3)  # the ControlNet acts once sizes match


def test_diff_controlnet_is_completed_with_the_models_unet(flows: Any) -> None:
    from tests.nodes.tiny_flows import txt2img

    full = flows.run(txt2img(control=_control(1.0), prefix="full")).latent
    diff = _control(1.0, loader="DiffControlNetLoader", name="diff.safetensors")
    rebuilt = flows.run(txt2img(control=diff, prefix="diff")).latent
    assert torch.allclose(rebuilt, full, rtol=1e-4, atol=1e-4)
    as_full = flows.run(txt2img(control=_control(1.0, loader="DiffControlNetLoader"), prefix="as_full")).latent
    assert torch.equal(as_full, full)  # a full ControlNet loads as it is through DiffControlNetLoader
    with pytest.raises(ValueError, match="difference ControlNet needs a model"):
        from diffusion.controlnet import load_controlnet

        load_controlnet(flows.folder("controlnet") / "diff.safetensors")


def _union_net(folder: Any) -> Any:
    from diffusers import ControlNetUnionModel

    from tests.diffusion.tiny_lora_models import CONTEXT

    torch.manual_seed(4)
    net = ControlNetUnionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        cross_attention_dim=CONTEXT,
        attention_head_dim=8,
        norm_num_groups=8,
        conditioning_embedding_out_channels=(4, 4, 8, 8),
        num_control_type=8,
        num_trans_channel=8,
        num_trans_head=2,
        num_proj_channel=8,
        addition_time_embed_dim=4,  # the control type's sinusoidal embedding width
    )
    with torch.no_grad():
        for param in net.parameters():
            param.normal_(0, 0.2)
    net.eval().requires_grad_(False).save_pretrained(folder)
    return net


def _step(hint: ControlHint) -> Any:
    gen = torch.Generator().manual_seed(1)
    x, context = torch.randn(1, 4, 8, 8, generator=gen), torch.randn(1, 3, 16, generator=gen)
    return hint.residuals(x, torch.tensor([10.0]), context, 0.0), (x, context)


def test_union_type_selects_the_task_embedding_and_leaves_plain_controlnets_alone(run: Any, env: Any) -> None:
    from diffusion.controlnet import ControlTypes

    folder = env.folders.model_dirs("controlnet")[0] / "union"
    net = _union_net(folder)
    (loaded,) = run("ControlNetLoader", control_net_name="union/diffusion_pytorch_model.safetensors")
    assert isinstance(loaded, ControlTypes) and loaded.union and loaded.types == ()
    (depth,) = run("SetUnionControlNetType", control_net=loaded, type="depth")
    assert depth.types == (1,) and depth.net is loaded.net and loaded.types == ()  # the loaded one is shared
    image = torch.rand(1, 64, 64, 3)
    (down, mid), (x, context) = _step(ControlHint(depth, image))
    one_hot = torch.zeros(1, 8)
    one_hot[0, 1] = 1
    cond = [ControlHint(depth, image).hint(x, None)]
    with torch.no_grad():
        want_down, want_mid = net(
            x, torch.tensor([10.0]), encoder_hidden_states=context, controlnet_cond=cond, control_type=one_hot,
            control_type_idx=[1], conditioning_scale=[1.0], return_dict=False,
        )  # fmt: skip
    assert torch.allclose(mid, want_mid, atol=1e-6) and all(
        torch.allclose(a, b, atol=1e-6) for a, b in zip(down, want_down, strict=True)
    )
    (canny,) = run("SetUnionControlNetType", control_net=depth, type="canny/lineart/anime_lineart/mlsd")
    assert canny.types == (3,) and not torch.allclose(_step(ControlHint(canny, image))[0][1], mid)
    plain = tiny_controlnet()
    (typed,) = run("SetUnionControlNetType", control_net=plain, type="tile")
    assert torch.equal(_step(ControlHint(typed, image))[0][1], _step(ControlHint(plain, image))[0][1])


def test_union_auto_reads_the_hint_untyped_as_the_reference_does(run: Any, env: Any) -> None:
    """ "auto" passes no control type: an all-zero type vector, and the hint's embedding added after the input
    convolution with no task embedding or fusion transformer, which is the typed path with the fusion's
    projection zeroed and an empty type vector."""
    import copy

    folder = env.folders.model_dirs("controlnet")[0] / "union_auto"
    net = _union_net(folder)
    (loaded,) = run("ControlNetLoader", control_net_name="union_auto/diffusion_pytorch_model.safetensors")
    (depth,) = run("SetUnionControlNetType", control_net=loaded, type="depth")
    (auto,) = run("SetUnionControlNetType", control_net=depth, type="auto")
    assert auto.types == () and auto.net is loaded.net
    image = torch.rand(1, 64, 64, 3)
    (down, mid), (x, context) = _step(ControlHint(auto, image, strength=0.7))
    unfused, cond = copy.deepcopy(net), [ControlHint(auto, image).hint(x, None)]
    with torch.no_grad():
        unfused.spatial_ch_projs.weight.zero_()
        unfused.spatial_ch_projs.bias.zero_()
        want_down, want_mid = unfused(
            x, torch.tensor([10.0]), encoder_hidden_states=context, controlnet_cond=cond,
            control_type=torch.zeros(1, 8), control_type_idx=[5], conditioning_scale=[0.7], return_dict=False,
        )  # fmt: skip
    assert torch.allclose(mid, want_mid, atol=1e-5) and all(
        torch.allclose(a, b, atol=1e-5) for a, b in zip(down, want_down, strict=True)
    )
    assert not torch.allclose(mid, _step(ControlHint(depth, image, strength=0.7))[0][1], atol=1e-4)
    assert not any(m._forward_hooks for m in loaded.net.modules())  # the hint's hook lives for one call
    (loaded_auto_down, _mid), _ = _step(ControlHint(loaded, image, strength=0.7))  # as loaded: no type, as auto
    assert all(torch.equal(a, b) for a, b in zip(loaded_auto_down, down, strict=True))


def test_alimama_inpainting_hint_carries_the_mask_for_a_mask_channel(run: Any) -> None:
    from diffusers import ControlNetModel

    image, mask = torch.rand(1, 16, 16, 3), torch.zeros(1, 16, 16)
    mask[:, 4:12, 4:12] = 1.0
    plain = tiny_controlnet()
    args = {"vae": None, "image": image, "mask": mask, "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0}
    pos, neg = run("ControlNetInpaintingAliMamaApply", positive=_cond(), negative=_cond(), control_net=plain, **args)
    hint = pos[0][1]["control"]
    assert hint.image is image and hint.strength == 0.8 and neg[0][1]["control"].image is image  # as Apply ControlNet
    torch.manual_seed(0)
    four = ControlNetModel(
        block_out_channels=(8, 16), layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        cross_attention_dim=16, attention_head_dim=8, norm_num_groups=8,
        conditioning_embedding_out_channels=(4, 4, 8, 8), conditioning_channels=4,
    ).eval()  # fmt: skip
    pos, _neg = run("ControlNetInpaintingAliMamaApply", positive=_cond(), negative=_cond(), control_net=four, **args)
    got = pos[0][1]["control"].image
    assert got.shape == (1, 16, 16, 4)
    assert torch.equal(got[..., 3], 1 - mask) and torch.equal(got[..., :3], image * (1 - mask)[..., None])
    assert _step(pos[0][1]["control"])[0] is not None
