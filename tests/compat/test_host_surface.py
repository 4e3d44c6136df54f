"""The host surface packs import at load time: real where Loom has the machinery, placeholders failing by name
at run time where it does not. Every pack here is our own small code using one pattern."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import compat
import nodes
from diffusion.demo import DEMO_NAME, write_demo_checkpoint
from diffusion.names import SAMPLER_NAMES, SCHEDULER_NAMES
from engine.context import NodeContext, RunControl, reset_current_context, set_current_context
from engine.events import NodeProgress
from engine.executor import Executor
from engine.folders import Folders
from engine.packs import load_packs
from engine.registry import NodeRegistry
from engine.validate import validate
from engine.workflow import parse_api
from nodes.shared import node_environment


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[compat.Host]:
    folders = Folders.under(tmp_path_factory.mktemp("loom"))
    folders.ensure()
    write_demo_checkpoint(folders.model_dirs("checkpoints")[0])
    env = node_environment(folders, force_cpu=True)
    registry = NodeRegistry(env)
    nodes.register_builtin(registry)
    yield compat.install(compat.Host(folders, registry, env, cpu=True))
    compat.uninstall()


@pytest.fixture(scope="module")
def loaded(host: compat.Host) -> tuple[Any, Any, Any]:
    import comfy.sd
    import folder_paths

    path = folder_paths.get_full_path_or_raise("checkpoints", DEMO_NAME)
    model, clip, vae, clip_vision = comfy.sd.load_checkpoint_guess_config(path, embedding_directory=None)
    assert clip_vision is None
    return model, clip, vae


class Context:
    """Runs code as node "7" of class "PackNode" would, collecting its events."""

    def __init__(self, env: Any) -> None:
        self.events: list[Any] = []
        self.ctx = NodeContext("p", "7", "7", "PackNode", self.events.append, RunControl(), env=env)

    def __enter__(self) -> Context:
        self.token = set_current_context(self.ctx)
        return self

    def __exit__(self, *exc: Any) -> None:
        reset_current_context(self.token)


def conditioning(host: compat.Host, clip: Any, text: str) -> Any:
    with Context(host.env):
        return nodes.NODE_CLASS_MAPPINGS["CLIPTextEncode"]().encode(clip, text)[0]


# ---- names and placeholders ------------------------------------------------------------------------------------


def test_sampler_and_scheduler_lists_are_looms_one_list(host: compat.Host) -> None:
    import comfy.samplers

    assert list(SAMPLER_NAMES) == comfy.samplers.KSampler.SAMPLERS
    assert list(SCHEDULER_NAMES) == comfy.samplers.KSampler.SCHEDULERS
    assert list(SAMPLER_NAMES) == comfy.samplers.SAMPLER_NAMES


@pytest.mark.parametrize(
    "statement",
    [
        "import comfy.ldm.modules.attention as m; m.optimized_attention",
        "from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel",
        "from comfy.model_base import BaseModel, SDXL",
        "from comfy.controlnet import ControlNet, load_controlnet",
        "import comfy.lora, comfy.sampler_helpers, comfy.sdxl_clip, comfy.model_sampling",
        "from comfy_extras.chainner_models import model_loading",
        "from comfy_extras.nodes_mask import composite, MaskComposite",
        "import execution; execution.PromptExecutor",
        "from comfy_execution.caching import HierarchicalCache",
        "from comfy.samplers import CFGGuider, KSAMPLER, sampler_object",
    ],
)
def test_host_internals_import_by_name(host: compat.Host, statement: str) -> None:
    exec(statement, {})


def test_a_placeholder_fails_at_run_time_naming_itself_and_the_calling_node(host: compat.Host) -> None:
    from comfy.sd import load_clip

    from compat.placeholder import HostFeatureMissing

    with Context(host.env), pytest.raises(HostFeatureMissing) as caught:
        load_clip(ckpt_paths=["x"])
    assert str(caught.value).startswith("Loom does not provide comfy.sd.load_clip, which node 7 (PackNode) called")


def test_a_placeholder_class_can_be_subclassed_but_not_made(host: compat.Host) -> None:
    from comfy.samplers import CFGGuider

    from compat.placeholder import HostFeatureMissing

    class MyGuider(CFGGuider):
        pass

    with pytest.raises(HostFeatureMissing, match=r"comfy\.samplers\.CFGGuider"):
        MyGuider(None)


PACK = """
import torch
import comfy.samplers
from comfy.sd import load_clip
from comfy_extras.nodes_model_advanced import ModelSamplingStableCascade
from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel


class Pure:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"n": ("INT", {"default": 2}), "sampler": (comfy.samplers.KSampler.SAMPLERS,)}}

    def run(self, n, sampler):
        return (n * 3,)


class NeedsClip:
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": ("STRING", {"default": "x.safetensors"})}}

    def run(self, path):
        return (load_clip(ckpt_paths=[path]),)


class MyCascade(ModelSamplingStableCascade):
    pass


class Show:
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})}}

    def run(self, value):
        return {"ui": {"value": [value]}}


NODE_CLASS_MAPPINGS = {
    "PackPure": Pure, "PackNeedsClip": NeedsClip, "PackCascade": MyCascade, "PackShow": Show,
    "PackUpscale": ImageUpscaleWithModel,
}
"""


def test_a_pack_on_missing_machinery_loads_its_pure_nodes_run_and_one_fails_by_name(
    host: compat.Host, tmp_path: Path
) -> None:
    root = tmp_path / "custom_nodes"
    (root / "surface_pack").mkdir(parents=True)
    (root / "surface_pack" / "__init__.py").write_text(textwrap.dedent(PACK))
    registry = host.registry
    [summary] = load_packs(registry, [root])
    try:
        assert summary.status == "ok", summary.traceback
        assert summary.count == "4 of 5 nodes"
        [rejected] = summary.rejected
        assert rejected.class_type == "PackCascade"
        assert "Loom does not provide comfy_extras.nodes_model_advanced.ModelSamplingStableCascade" in rejected.reason
        assert registry.get("PackUpscale").schema()["input"] == registry.get("ImageUpscaleWithModel").schema()["input"]
        executor = Executor(registry)
        ok = parse_api(
            {
                "1": {"class_type": "PackPure", "inputs": {"n": 4, "sampler": "euler"}},
                "2": {"class_type": "PackShow", "inputs": {"value": ["1", 0]}},
            }
        )
        checked = validate(ok, registry)
        assert checked.ok, checked.to_response()
        outcome = executor.run(ok, outputs=checked.outputs, prompt_id="a", emit=lambda e: None)
        assert outcome.status == "success" and outcome.outputs["2"] == {"value": [12]}
        failing = parse_api({"5": {"class_type": "PackNeedsClip", "inputs": {"path": "a.safetensors"}}})
        checked = validate(failing, registry)
        outcome = executor.run(failing, outputs=checked.outputs, prompt_id="b", emit=lambda e: None)
        assert outcome.status == "error" and outcome.error.node_id == "5"
        assert outcome.error.exception_message.startswith(
            "Loom does not provide comfy.sd.load_clip, which node 5 (PackNeedsClip) called"
        )
    finally:
        for name in summary.nodes:
            registry._specs.pop(name, None)
        sys.modules.pop("custom_nodes.surface_pack", None)


# ---- real shims ------------------------------------------------------------------------------------------------


def test_load_checkpoint_guess_config_returns_looms_objects(host: compat.Host, loaded: tuple[Any, Any, Any]) -> None:
    import comfy.sd

    from diffusion.model import DiffusionModel

    model, clip, vae = loaded
    assert isinstance(model, DiffusionModel)
    assert isinstance(vae, comfy.sd.VAE) and isinstance(clip, comfy.sd.CLIP)
    assert not isinstance(model, comfy.sd.VAE)


def test_nodes_ksampler_and_common_ksampler_run_looms_sampler(host: compat.Host, loaded: tuple[Any, Any, Any]) -> None:
    model, clip, _ = loaded
    positive, negative = conditioning(host, clip, "a cat"), conditioning(host, clip, "")
    latent = nodes.NODE_CLASS_MAPPINGS["EmptyLatentImage"]().generate(64, 64, 1)[0]
    with Context(host.env) as run:
        (by_class,) = nodes.KSampler().sample(model, 5, 2, 7.0, "euler", "normal", positive, negative, latent)
        (common,) = nodes.common_ksampler(model, 5, 2, 7.0, "euler", "normal", positive, negative, latent)
        (ranged,) = nodes.common_ksampler(
            model, 5, 2, 7.0, "euler", "normal", positive, negative, latent, start_step=0, last_step=1
        )
    assert by_class["samples"].shape == (1, 4, 8, 8)
    assert torch.equal(by_class["samples"], common["samples"])
    assert not torch.equal(ranged["samples"], common["samples"])
    assert [e.value for e in run.events if isinstance(e, NodeProgress)][:2] == [1, 2]


def test_comfy_sample_runs_looms_sampler_with_the_packs_seed(host: compat.Host, loaded: tuple[Any, Any, Any]) -> None:
    import comfy.sample

    model, clip, _ = loaded
    positive, negative = conditioning(host, clip, "a dog"), conditioning(host, clip, "")
    latent = torch.zeros(1, 4, 8, 8)
    noise = comfy.sample.prepare_noise(latent, 11)
    steps: list[tuple[int, int]] = []
    samples = comfy.sample.sample(
        model,
        noise,
        2,
        6.0,
        "euler",
        "karras",
        positive,
        negative,
        latent,
        seed=11,
        callback=lambda step, x0, x, total: steps.append((step, total)),
    )
    with Context(host.env):
        (reference,) = nodes.common_ksampler(
            model, 11, 2, 6.0, "euler", "karras", positive, negative, {"samples": latent}
        )
    assert torch.equal(samples, reference["samples"]) and steps == [(0, 2), (1, 2)]
    with pytest.raises(ValueError, match="pass seed="):
        comfy.sample.sample(model, noise, 2, 6.0, "euler", "karras", positive, negative, latent)


def test_model_patcher_patches_are_honoured_and_unhonoured_options_refused(
    host: compat.Host, loaded: tuple[Any, Any, Any]
) -> None:
    import comfy.sample
    from comfy.model_patcher import ModelPatcher

    from compat.placeholder import HostFeatureMissing

    model, clip, _ = loaded
    patcher = ModelPatcher(model, torch.device("cpu"), torch.device("cpu"))
    clone = patcher.clone()
    assert clone.is_clone(patcher) and clone.model is model
    key = next(k for k in clone.model_state_dict() if k.endswith("out.2.weight"))
    weight = clone.model_state_dict()[key]
    assert clone.add_patches({key: (torch.ones_like(weight),), "diffusion_model.no.such": (weight,)}, 0.5) == [key]
    assert not patcher.patches
    patched = clone.loom_model()
    assert patched is not model and clone.unet is patched.unet
    from diffusion.ldm_names import ldm_state_dict_names

    name = next(n for n, ldm in ldm_state_dict_names(model.unet).items() if "diffusion_model." + ldm == key)
    assert torch.allclose(patched.unet.state_dict()[name].float(), weight.float() + 0.5)
    assert torch.equal(model.unet.state_dict()[name], weight)
    positive, negative = conditioning(host, clip, "x"), conditioning(host, clip, "")
    latent = torch.zeros(1, 4, 8, 8)
    plain = comfy.sample.sample(patcher, None, 1, 1.0, "euler", "normal", positive, negative, latent, seed=1)
    changed = comfy.sample.sample(clone, None, 1, 1.0, "euler", "normal", positive, negative, latent, seed=1)
    assert not torch.equal(plain, changed)
    no_guidance = comfy.sample.sample(patcher, None, 2, 1.0, "euler", "normal", positive, negative, latent, seed=1)
    cfg_hooked = patcher.clone()
    cfg_hooked.set_model_sampler_cfg_function(lambda args: args["cond"])  # the positive alone: no guidance
    post_hooked = patcher.clone()
    post_hooked.set_model_sampler_post_cfg_function(lambda args: args["cond_denoised"])
    for hooked in (cfg_hooked, post_hooked):
        guided = comfy.sample.sample(hooked, None, 2, 7.0, "euler", "normal", positive, negative, latent, seed=1)
        assert torch.allclose(guided, no_guidance, atol=1e-4)
    wrapped = patcher.clone()
    wrapped.set_model_unet_function_wrapper(lambda apply, args: apply(args["input"], args["timestep"]))
    with pytest.raises(HostFeatureMissing, match="model_function_wrapper"):
        comfy.sample.sample(wrapped, None, 1, 1.0, "euler", "normal", positive, negative, latent, seed=1)


def test_k_diffusion_schedules_and_samplers(host: compat.Host) -> None:
    from comfy.k_diffusion import sampling, utils

    karras = sampling.get_sigmas_karras(4, 0.1, 10.0)
    assert karras.shape == (5,) and float(karras[0]) == pytest.approx(10.0) and float(karras[-1]) == 0
    assert float(karras[3]) == pytest.approx(0.1)
    expo = sampling.get_sigmas_exponential(3, 1.0, 100.0)
    assert [round(float(v), 4) for v in expo] == [100.0, 10.0, 1.0, 0.0]
    assert utils.to_d is sampling.to_d
    x = torch.ones(1, 1, 2, 2)
    sigmas = torch.tensor([2.0, 1.0, 0.0])
    seen: list[int] = []
    out = sampling.sample_euler(lambda x, s, **kw: x * 0, x, sigmas, callback=lambda d: seen.append(d["i"]))
    assert torch.allclose(out, torch.zeros_like(x)) and seen == [0, 1]
    with pytest.raises(ValueError, match=r"no settings \{'eta': 0.5\}"):
        sampling.sample_euler_ancestral(lambda x, s: x, x, sigmas, eta=0.5)


def test_comfy_utils_helpers(host: compat.Host, tmp_path: Path) -> None:
    import comfy.utils

    images = torch.rand(2, 3, 8, 12)
    assert comfy.utils.common_upscale(images, 6, 4, "bilinear", "disabled").shape == (2, 3, 4, 6)
    assert comfy.utils.common_upscale(images, 8, 8, "nearest-exact", "center").shape == (2, 3, 8, 8)
    path = tmp_path / "t.safetensors"
    comfy.utils.save_torch_file({"a": torch.arange(3.0)}, path, metadata={"k": "v"})
    tensors, meta = comfy.utils.load_torch_file(str(path), safe_load=True, return_metadata=True)
    assert torch.equal(tensors["a"], torch.arange(3.0)) and meta == {"k": "v"}
    assert comfy.utils.repeat_to_batch_size(torch.arange(2), 5).tolist() == [0, 1, 0, 1, 0]
    sd = {"model.a": 1, "model.b": 2, "c": 3}
    assert comfy.utils.state_dict_prefix_replace(sd, {"model.": "m."}) == {"c": 3, "m.a": 1, "m.b": 2}


def test_model_management_answers_with_looms_manager(host: compat.Host, loaded: tuple[Any, Any, Any]) -> None:
    import comfy.model_management as mm

    manager = host.env.models
    assert mm.get_torch_device() == torch.device("cpu") and mm.unet_offload_device() == manager.offload_device
    assert mm.unet_dtype() == manager.dtype and mm.vae_dtype() == manager.dtype
    assert mm.xformers_enabled() is False and mm.is_device_cpu(torch.device("cpu"))
    assert mm.get_free_memory(torch.device("cpu")) > 0
    module = torch.nn.Linear(2, 2)
    from comfy.model_patcher import ModelPatcher

    mm.load_models_gpu([loaded[0], ModelPatcher(module, torch.device("cpu"), torch.device("cpu"))])
    assert issubclass(mm.OOM_EXCEPTION, Exception) and mm.VRAMState.NORMAL_VRAM.value == 3


def test_cli_args_latent_formats_ops_and_node_helpers(host: compat.Host) -> None:
    import node_helpers
    from comfy import latent_formats, ops
    from comfy.cli_args import LatentPreviewMethod, args

    assert args.cpu is True and args.output_directory == str(host.folders.output)
    assert args.preview_method == LatentPreviewMethod.Auto and args.disable_metadata is False
    assert latent_formats.SD15().scale_factor == pytest.approx(0.18215)
    assert torch.allclose(latent_formats.SDXL().process_in(torch.ones(1)), torch.tensor([0.13025]))
    layer = ops.manual_cast.Linear(2, 3).to(torch.float16)
    assert layer(torch.ones(1, 2)).dtype == torch.float32 and layer.weight.dtype == torch.float16
    assert isinstance(ops.disable_weight_init.Conv2d(1, 1, 1), torch.nn.Conv2d)
    cond = [[torch.zeros(1), {"a": 1}]]
    updated = node_helpers.conditioning_set_values(cond, {"strength": 0.5})
    assert updated[0][1] == {"a": 1, "strength": 0.5} and cond[0][1] == {"a": 1}


def test_latent_preview_callback_reports_progress_with_a_preview(
    host: compat.Host, loaded: tuple[Any, Any, Any]
) -> None:
    import latent_preview
    from comfy import latent_formats

    model = loaded[0]
    out: dict[str, Any] = {}
    with Context(host.env) as run:
        callback = latent_preview.prepare_callback(model, 2, out)
        callback(0, torch.zeros(1, 4, 8, 8), None, 2)
        callback(1, torch.ones(1, 4, 8, 8), None, 2)
    progress = [e for e in run.events if isinstance(e, NodeProgress)]
    assert [(e.value, e.max) for e in progress] == [(1, 2), (2, 2)]
    assert progress[-1].preview is not None and progress[-1].preview.format == "JPEG"
    assert torch.equal(out["x0"], torch.ones(1, 4, 8, 8))
    previewer = latent_preview.get_previewer(torch.device("cpu"), latent_formats.SD15())
    fmt, image, size = previewer.decode_latent_to_preview_image("JPEG", torch.zeros(1, 4, 8, 8))
    assert (fmt, image.size, size) == ("JPEG", (8, 8), 512)


def test_folder_paths_file_points_into_the_user_folder(host: compat.Host) -> None:
    import os

    import folder_paths

    from compat.host import legacy_extensions

    root = Path(os.path.dirname(folder_paths.__file__))
    assert root.is_relative_to(host.folders.user)
    target = root / "web" / "extensions" / "old_pack"
    target.mkdir(parents=True, exist_ok=True)
    (target / "old.js").write_text("console.log('old');\n")
    assert legacy_extensions(host.folders) == {"old_pack": target}


def test_older_packs_copying_into_the_host_web_folder_write_into_the_user_folder(tmp_path: Path) -> None:
    from compat.host import host_root, legacy_extensions, redirect_legacy_web

    folders = Folders.under(tmp_path / "base")
    folders.ensure()
    pack_dir = folders.custom_nodes[0] / "old_style"
    pack_dir.mkdir(parents=True)
    assert redirect_legacy_web(folders) == [tmp_path / "base" / "web" / "extensions"]
    assert redirect_legacy_web(folders) == []  # already there
    copied = pack_dir / ".." / ".." / "web" / "extensions" / "old_style"
    copied.mkdir(parents=True)
    (copied / "ui.js").write_text("console.log('old style');\n")
    assert (host_root(folders) / "web" / "extensions" / "old_style" / "ui.js").is_file()
    assert list(legacy_extensions(folders)) == ["old_style"]


def test_star_import_of_nodes_gives_the_reference_names(host: compat.Host) -> None:
    namespace: dict[str, Any] = {}
    exec("from nodes import *", namespace)
    assert namespace["MAX_RESOLUTION"] == nodes.MAX_RESOLUTION and namespace["KSampler"].FUNCTION == "sample"
    assert callable(namespace["common_ksampler"]) and "register_builtin" not in namespace


def test_save_image_save_images_writes_through_looms_saver(host: compat.Host) -> None:
    images = torch.rand(2, 8, 8, 3)
    with Context(host.env):
        result = nodes.SaveImage().save_images(images, "pack/shot")
        preview = nodes.PreviewImage().save_images(images, "ignored-prefix")
    saved = result["ui"]["images"]
    assert [(i["subfolder"], i["type"]) for i in saved] == [("pack", "output")] * 2
    assert all((host.folders.output / "pack" / i["filename"]).is_file() for i in saved)
    assert {i["type"] for i in preview["ui"]["images"]} == {"temp"}


def test_a_constant_read_off_a_placeholder_class_is_refused_by_name(host: compat.Host) -> None:
    from comfy.patcher_extension import WrappersMP
    from comfy.samplers import KSampler

    with pytest.raises(AttributeError, match=r"^Loom does not provide comfy\.patcher_extension\.WrappersMP\.OUTER"):
        WrappersMP.OUTER_SAMPLE  # noqa: B018
    assert not hasattr(KSampler, "SOMETHING_ELSE") and KSampler.SCHEDULERS


BROAD_IMPORTS_PACK = """
import comfy
import comfy.model_management as mm
import comfy.sample
import comfy.samplers
import comfy.sd
import comfy.utils
import folder_paths
import latent_preview
import node_helpers
import nodes
import server
from comfy import latent_formats, model_base
from comfy.cli_args import args
from comfy.clip_vision import Output, clip_preprocess
from comfy.controlnet import ControlBase, broadcast_image_to
from comfy.k_diffusion import sampling as k_sampling
from comfy.k_diffusion.utils import FolderOfImages
from comfy.ldm.modules.attention import optimized_attention, wrap_attn
from comfy.ldm.modules.diffusionmodules.util import timestep_embedding
from comfy.model_patcher import ModelPatcher
from comfy.sample import np
from comfy.samplers import KSamplerX0Inpaint
from comfy_extras.nodes_custom_sampler import Noise_RandomNoise
from comfy_extras.nodes_mask import composite
from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel
from nodes import MAX_RESOLUTION, CLIPTextEncode, KSampler, VAEDecode
from server import BinaryEventTypes, PromptServer

SCHEDULERS = comfy.samplers.KSampler.SCHEDULERS + ["extra"]
folder_paths.folder_names_and_paths["my_models"] = ([folder_paths.models_dir + "/my_models"], {".pt"})
PromptServer.instance.add_on_prompt_handler(lambda body: body)
preview_method = args.preview_method


class MyPatcher(ModelPatcher):
    pass


class Sched:
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"scheduler": (SCHEDULERS,), "size": ("INT", {"default": 64, "max": MAX_RESOLUTION})}}

    def run(self, scheduler, size):
        return (scheduler,)


NODE_CLASS_MAPPINGS = {"BroadSched": Sched}
"""


def test_a_pack_importing_the_common_load_time_surface_loads(host: compat.Host, tmp_path: Path) -> None:
    root = tmp_path / "custom_nodes"
    (root / "broad_pack").mkdir(parents=True)
    (root / "broad_pack" / "__init__.py").write_text(textwrap.dedent(BROAD_IMPORTS_PACK))
    registry = host.registry
    [summary] = load_packs(registry, [root])
    try:
        assert summary.status == "ok", summary.error
        assert summary.count == "1 of 1 nodes"
        assert registry.get("BroadSched").input("scheduler").choices[-1] == "extra"
    finally:
        registry._specs.pop("BroadSched", None)
        sys.modules.pop("custom_nodes.broad_pack", None)
        from compat.server import PromptServer

        PromptServer.instance.on_prompt_handlers.clear()


MODEL_PACK = """
class CloneModel:
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "with_cfg_hook": ("BOOLEAN", {"default": False})}}

    def run(self, model, with_cfg_hook):
        twin = model.clone()
        twin.model_options["transformer_options"]["seen_by_pack"] = True
        if with_cfg_hook:
            twin.set_model_sampler_cfg_function(lambda args: args["cond"])
        return (twin,)


NODE_CLASS_MAPPINGS = {"PackCloneModel": CloneModel}
"""


def test_pack_nodes_get_looms_model_as_a_model_patcher_that_looms_sampler_runs(
    host: compat.Host, loaded: tuple[Any, Any, Any], tmp_path: Path
) -> None:
    from comfy.model_patcher import ModelPatcher

    from compat.adapt import adapt

    root = tmp_path / "custom_nodes"
    (root / "model_pack").mkdir(parents=True)
    (root / "model_pack" / "__init__.py").write_text(textwrap.dedent(MODEL_PACK))
    registry = host.registry
    [summary] = load_packs(registry, [root], adapt=adapt)
    model, clip, _ = loaded
    try:
        assert summary.status == "ok", summary.error
        (twin,) = registry.get("PackCloneModel").invoke({"model": model, "with_cfg_hook": False})
        assert isinstance(twin, ModelPatcher) and twin.model is model
        positive, negative = conditioning(host, clip, "x"), conditioning(host, clip, "")
        latent = {"samples": torch.zeros(1, 4, 8, 8)}
        with Context(host.env):
            (by_patcher,) = nodes.KSampler().sample(twin, 3, 1, 5.0, "euler", "normal", positive, negative, latent)
            (by_model,) = nodes.KSampler().sample(model, 3, 1, 5.0, "euler", "normal", positive, negative, latent)
        assert torch.equal(by_patcher["samples"], by_model["samples"])
        (hooked,) = registry.get("PackCloneModel").invoke({"model": model, "with_cfg_hook": True})
        with Context(host.env):
            (by_hook,) = nodes.KSampler().sample(hooked, 3, 1, 5.0, "euler", "normal", positive, negative, latent)
            (unguided,) = nodes.KSampler().sample(model, 3, 1, 1.0, "euler", "normal", positive, negative, latent)
        assert torch.allclose(by_hook["samples"], unguided["samples"], atol=1e-4)
    finally:
        registry._specs.pop("PackCloneModel", None)
        sys.modules.pop("custom_nodes.model_pack", None)
