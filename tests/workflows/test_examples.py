"""The example workflows in workflows/: both formats agree, and every example runs end to end on tiny models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import nodes
from diffusion.demo import DEMO_FILES, DEMO_MODELS
from diffusion.demo_dit import DIT_DEMO_MODELS
from engine.environment import NodeEnvironment
from engine.folders import Folders
from engine.registry import NodeRegistry
from formats.canvas import canvas_to_api, is_canvas, widget_inputs

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
DEMO_NAMES = {m.name for m in (*DEMO_MODELS, *DIT_DEMO_MODELS)}
EXAMPLES = sorted(p.name[: -len(".api.json")] for p in WORKFLOWS.glob("*.api.json"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> NodeRegistry:
    folders = Folders.under(tmp_path_factory.mktemp("examples"))
    folders.ensure()
    registry = NodeRegistry(NodeEnvironment(folders))
    nodes.register_builtin(registry)
    return registry


def api_of(name: str) -> dict[str, Any]:
    return json.loads((WORKFLOWS / f"{name}.api.json").read_text())


def skip_unless_nodes_exist(name: str, registry: NodeRegistry) -> None:
    missing = sorted({n["class_type"] for n in api_of(name).values()} - {s.class_type for s in registry})
    if missing:
        pytest.skip(f"{name}: built-in nodes not on this branch yet: {', '.join(missing)}")


def test_every_example_has_both_formats_and_a_readme_entry() -> None:
    readme = (WORKFLOWS / "README.md").read_text()
    assert len(EXAMPLES) == 15
    for name in EXAMPLES:
        canvas = json.loads((WORKFLOWS / f"{name}.json").read_text())
        assert is_canvas(canvas), name
        assert f"| `{name}` |" in readme, name
    assert "loom-demo-tiny-sd15.safetensors" in json.dumps(api_of("txt2img"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_canvas_example_converts_to_its_api_twin(name: str, registry: NodeRegistry) -> None:
    skip_unless_nodes_exist(name, registry)
    canvas = json.loads((WORKFLOWS / f"{name}.json").read_text())
    assert canvas_to_api(canvas, registry) == api_of(name)


@pytest.mark.parametrize("name", EXAMPLES)
def test_canvas_example_lists_a_slot_per_widget(name: str, registry: NodeRegistry) -> None:
    """Client libraries that convert canvas files read widget names from these slots, as current front ends
    write them."""
    skip_unless_nodes_exist(name, registry)
    for node in json.loads((WORKFLOWS / f"{name}.json").read_text())["nodes"]:
        spec = registry.get(node["type"])
        if spec is None:
            continue
        slots = {i["widget"]["name"] for i in node["inputs"] if "widget" in i}
        assert slots == {w.name for w in widget_inputs(spec)}, (name, node["id"])


# examples naming the demo files themselves: they validate on a bare machine
OUT_OF_THE_BOX = ("txt2img", "flux", "sd3")
SMALL = ["KSampler.steps=2", "Empty Latent.width=64", "Empty Latent.height=64"]
# Per example: `--set` overrides that keep the run small, and the model files it needs besides the checkpoint.
RUNS: dict[str, list[str]] = {
    "flux": ["KSampler.steps=2", "Empty Latent.width=64", "Empty Latent.height=64"],
    "sd3": ["KSampler.steps=2", "Empty Latent.width=64", "Empty Latent.height=64"],
    "flux_redux": ["KSampler.steps=2", "Empty Latent.width=64", "Empty Latent.height=64"],
    "txt2img": SMALL,
    "img2img": SMALL[:1],
    "inpainting": SMALL[:1],
    "hires_fix": [*SMALL, "Upscale Latent.width=96", "Upscale Latent.height=96", "KSampler (hires pass).steps=2"],
    "hires_fix_model_upscale": [
        *SMALL,
        "Scale to 1024.width=96",
        "Scale to 1024.height=96",
        "KSampler (hires pass).steps=2",
    ],
    "lora": SMALL,
    "two_loras": SMALL,
    "controlnet_canny": SMALL,
    "two_controlnets": SMALL,
    "area_composition": [
        *SMALL[:1],
        "Empty Latent.width=192",
        "Empty Latent.height=64",
        "Left third.width=64",
        "Left third.height=64",
        "Right third.width=64",
        "Right third.height=64",
        "Right third.x=128",
    ],
    "sdxl_base": SMALL,
    "ip_adapter": SMALL,
}


def model_files(name: str) -> dict[str, str]:
    """Every model file an example names that is not a demo file itself -> the model folder it comes from."""
    wanted: dict[str, str] = {}
    for node in api_of(name).values():
        for key, folder in (
            ("ckpt_name", "checkpoints"),
            ("lora_name", "loras"),
            ("control_net_name", "controlnet"),
            ("model_name", "upscale_models"),
            ("clip_name", "clip_vision"),
            ("ipadapter_file", "ipadapter"),
        ):
            if key in node["inputs"] and node["inputs"][key] not in DEMO_NAMES:
                wanted[node["inputs"][key]] = folder
    return wanted


def test_every_model_an_example_names_has_a_demo_stand_in() -> None:
    for name in EXAMPLES:
        assert set(model_files(name).values()) <= set(DEMO_FILES), name


def prepare(tmp_path: Path) -> list[str]:
    """A fresh base directory with the examples' input image; the common flags of a small CPU run."""
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "example.png").write_bytes((WORKFLOWS / "example.png").read_bytes())
    return ["--base-directory", str(tmp_path), "--cpu"]


def assert_one_image_with_its_workflow(tmp_path: Path, name: str) -> None:
    from formats.pngmeta import read_image_workflow

    saved = sorted((tmp_path / "output").glob("*.png"))
    assert len(saved) == 1
    embedded = read_image_workflow(saved[0])
    assert embedded.prompt is not None and embedded.workflow is not None
    assert embedded.workflow["extra"]["info"]["name"] == name  # the example's own canvas, not a re-made one


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_end_to_end(name: str, registry: NodeRegistry, tmp_path: Path) -> None:
    """Through `main.py run`, with Loom's demo files standing in for every named model file via --model-map."""
    skip_unless_nodes_exist(name, registry)
    from cli import main

    argv = ["run", str(WORKFLOWS / f"{name}.json"), *prepare(tmp_path)]
    argv += [f"--model-map={file}={DEMO_FILES[folder]}" for file, folder in model_files(name).items()]
    argv += [f"--set={item}" for item in RUNS[name]]
    assert main(argv) == 0
    assert_one_image_with_its_workflow(tmp_path, name)
    assert strings_used(tmp_path) >= {DEMO_FILES[folder] for folder in model_files(name).values()}


def strings_used(tmp_path: Path) -> set[str]:
    """The text inputs of the workflow the saved image carries (so: of the run that made it)."""
    from formats.pngmeta import read_image_workflow

    prompt = read_image_workflow(next((tmp_path / "output").glob("*.png"))).prompt
    assert prompt is not None
    return {v for node in prompt.values() for v in node["inputs"].values() if isinstance(v, str)}


@pytest.mark.slow
def test_demo_models_flag_runs_an_example_naming_absent_models(tmp_path: Path) -> None:
    """`--demo-models` stands the demo file of each folder in for every model file that is not there."""
    from cli import main

    name = "hires_fix_model_upscale"
    argv = ["run", str(WORKFLOWS / f"{name}.json"), *prepare(tmp_path), "--demo-models"]
    assert main([*argv, *(f"--set={item}" for item in RUNS[name])]) == 0
    assert_one_image_with_its_workflow(tmp_path, name)
    assert {DEMO_FILES["checkpoints"], DEMO_FILES["upscale_models"]} <= strings_used(tmp_path)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_validates_with_demo_models(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cli import main

    assert main(["validate", str(WORKFLOWS / f"{name}.json"), *prepare(tmp_path), "--demo-models"]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    without = tmp_path / "bare"
    assert main(["validate", str(WORKFLOWS / f"{name}.json"), "--base-directory", str(without)]) == (
        0 if name in OUT_OF_THE_BOX else 1
    )


@pytest.mark.slow
def test_the_image_a_run_saved_runs_again_to_the_same_image(tmp_path: Path) -> None:
    """`main.py run IMAGE.png` restores the workflow the image carries (with the first run's --set values)."""
    from cli import main
    from formats.pngmeta import read_image_workflow

    argv = ["run", str(WORKFLOWS / "txt2img.json"), *prepare(tmp_path), *(f"--set={s}" for s in RUNS["txt2img"])]
    assert main([*argv, "--set=KSampler.seed=1234"]) == 0
    first = next((tmp_path / "output").glob("*.png"))
    again = tmp_path / "again"
    assert main(["run", str(first), "--base-directory", str(tmp_path), "--output-directory", str(again)]) == 0
    second = next(again.glob("*.png"))
    before, after = read_image_workflow(first), read_image_workflow(second)
    assert after.prompt == before.prompt and after.prompt is not None
    assert next(n for n in after.prompt.values() if n["class_type"] == "KSampler")["inputs"]["seed"] == 1234
    assert after.workflow == before.workflow
    assert Image.open(first).tobytes() == Image.open(second).tobytes()
