"""Opening workflow files of every kind, model substitution, overrides and the up-front problem report."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from engine.errors import ErrorType
from engine.validate import validate
from engine.workflow import parse_api
from formats.problems import WorkflowFileError
from formats.workflow_files import apply_overrides, load_workflow, model_folder, parse_model_map, read_document
from tests.formats.canvas_nodes import registry
from tests.formats.test_canvas import EXPECTED, cnode, pipeline

REG = registry()


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def write_png(path: Path, **texts: Any) -> Path:
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, json.dumps(value))
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG", pnginfo=info)
    path.write_bytes(buf.getvalue())
    return path


def test_formats_are_detected(tmp_path: Path) -> None:
    assert read_document(write_json(tmp_path / "a.json", EXPECTED)).format == "api"
    assert read_document(write_json(tmp_path / "c.json", pipeline())).format == "canvas"
    doc = read_document(write_png(tmp_path / "i.png", prompt=EXPECTED, workflow=pipeline()))
    assert doc.format == "image" and doc.api == EXPECTED and doc.canvas == pipeline()


@pytest.mark.parametrize("texts", [{"prompt": EXPECTED}, {"workflow": pipeline()}])
def test_images_with_either_format_load(tmp_path: Path, texts: dict[str, Any]) -> None:
    loaded = load_workflow(write_png(tmp_path / "i.png", **texts), REG)
    assert loaded.api == EXPECTED


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", b"{nope", "not valid JSON"),
        ("list.json", b"[1, 2]", "neither an API-format nor a canvas-format workflow"),
        ("empty.png", None, "carries no workflow"),
        ("fake.png", b"\x89PNG but not", "not a PNG"),
    ],
)
def test_unreadable_files_are_reported(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    path = tmp_path / name
    if content is None:
        write_png(path)
    else:
        path.write_bytes(content)
    with pytest.raises(WorkflowFileError, match=message):
        read_document(path)


def test_unknown_nodes_and_missing_models_are_reported_all_at_once(tmp_path: Path) -> None:
    canvas = pipeline()
    canvas["nodes"][0]["widgets_values"] = ["v1-5-pruned-emaonly.safetensors"]
    canvas["nodes"] += [cnode(40, "FancyUpscaler"), cnode(41, "MagicLoRA")]
    with pytest.raises(WorkflowFileError) as err:
        load_workflow(write_json(tmp_path / "w.json", canvas), REG)
    assert err.value.missing_node_types == ["FancyUpscaler", "MagicLoRA"]
    assert err.value.missing_models == ["v1-5-pruned-emaonly.safetensors"]
    model_problem = next(p for p in err.value.problems if p.type == ErrorType.VALUE_NOT_IN_LIST)
    assert model_problem.node_id == "1" and model_problem.input_name == "ckpt_name"
    assert "checkpoints/" in model_problem.message


def test_api_format_unknown_node_is_reported(tmp_path: Path) -> None:
    api = {**EXPECTED, "9": {"class_type": "Nope", "inputs": {}}}
    with pytest.raises(WorkflowFileError) as err:
        load_workflow(write_json(tmp_path / "w.json", api), REG)
    assert [p.type for p in err.value.problems] == [ErrorType.MISSING_NODE_TYPE]


@pytest.mark.parametrize(
    ("change", "error_type", "node_error_type"),
    [
        ({"9": {"class_type": "Nope", "inputs": {}}}, "missing_node_type", "missing_node_type"),
        (
            {"1": {"class_type": "Loader", "inputs": {"ckpt_name": "gone.safetensors"}}},
            "prompt_outputs_failed_validation",
            "value_not_in_list",
        ),
    ],
)
def test_a_file_and_the_api_name_the_same_mistake_alike(
    tmp_path: Path, change: dict[str, Any], error_type: str, node_error_type: str
) -> None:
    """The same workflow mistake has the same error types from a file as from POST /prompt (engine.validate)."""
    api = {**EXPECTED, **change}
    with pytest.raises(WorkflowFileError) as err:
        load_workflow(write_json(tmp_path / "w.json", api), REG)
    from_file = err.value.to_response()
    from_api = validate(parse_api(api), REG).to_response()
    node_id = next(iter(change))
    for body in (from_file, from_api):
        assert body["error"]["type"] == error_type
        assert body["node_errors"][node_id]["errors"][0]["type"] == node_error_type


def test_model_map_substitutes_the_named_file(tmp_path: Path) -> None:
    api = json.loads(json.dumps(EXPECTED))
    api["1"]["inputs"]["ckpt_name"] = "v1-5-pruned-emaonly.safetensors"
    path = write_json(tmp_path / "w.json", api)
    mapping = parse_model_map(["v1-5-pruned-emaonly.safetensors=other.ckpt"])
    assert load_workflow(path, REG, model_map=mapping).api["1"]["inputs"]["ckpt_name"] == "other.ckpt"
    with pytest.raises(WorkflowFileError, match="expected NAME=FILE"):
        parse_model_map(["justaname", "=x"])


def test_model_fallbacks_stand_in_by_folder_for_files_still_missing(tmp_path: Path) -> None:
    api = json.loads(json.dumps(EXPECTED))
    api["1"]["inputs"]["ckpt_name"] = "v1-5-pruned-emaonly.safetensors"
    path = write_json(tmp_path / "w.json", api)
    loaded = load_workflow(path, REG, model_fallbacks={"checkpoints": "tiny.safetensors", "loras": "x.safetensors"})
    assert loaded.api["1"]["inputs"]["ckpt_name"] == "tiny.safetensors"
    assert loaded.api["3"] == EXPECTED["3"]
    # A name the map already resolves is not touched; a folder without a fallback still reports the file.
    mapped = load_workflow(
        path,
        REG,
        model_map={"v1-5-pruned-emaonly.safetensors": "other.ckpt"},
        model_fallbacks={"checkpoints": "tiny.safetensors"},
    )
    assert mapped.api["1"]["inputs"]["ckpt_name"] == "other.ckpt"
    with pytest.raises(WorkflowFileError) as err:
        load_workflow(path, REG, model_fallbacks={"loras": "x.safetensors"})
    assert err.value.missing_models == ["v1-5-pruned-emaonly.safetensors"]


@pytest.mark.parametrize(
    ("class_type", "input_name", "folder"),
    [
        ("CheckpointLoaderSimple", "ckpt_name", "checkpoints"),
        ("LoraLoader", "lora_name", "loras"),
        ("ControlNetLoader", "control_net_name", "controlnet"),
        ("UpscaleModelLoader", "model_name", "upscale_models"),
        ("VAELoader", "vae_name", "vae"),
        ("UNETLoader", "unet_name", "diffusion_models"),
        ("Mystery", "file", "models"),
    ],
)
def test_model_folder_is_told_by_the_input_or_the_node_type(class_type: str, input_name: str, folder: str) -> None:
    assert model_folder(class_type, input_name) == folder


def test_overrides_by_id_title_and_type() -> None:
    api = json.loads(json.dumps(EXPECTED))
    api["4"]["_meta"] = {"title": "Upscale.me"}
    out = apply_overrides(api, ["Sample.seed=7", "3.steps=2", "Upscale.me.factor=3", "5.filename_prefix=x y"], REG)
    assert out["3"]["inputs"]["seed"] == 7
    assert out["3"]["inputs"]["steps"] == 2
    assert out["4"]["inputs"]["factor"] == 3
    assert out["5"]["inputs"]["filename_prefix"] == "x y"
    assert api["3"]["inputs"]["seed"] == 5  # the input workflow is left alone


def test_bad_overrides_are_all_reported() -> None:
    api = {**EXPECTED, "6": {"class_type": "Save", "inputs": {}}}
    with pytest.raises(WorkflowFileError) as err:
        apply_overrides(api, ["Save.filename_prefix=a", "Sample.nope=1", "Ghost.x=1", "noequals"], REG)
    messages = [p.message for p in err.value.problems]
    assert all(p.type == ErrorType.BAD_OVERRIDE for p in err.value.problems)
    assert "names several nodes (5, 6)" in messages[0]
    assert "has no input 'nope'" in messages[1]
    assert "no node has id, title or type 'Ghost'" in messages[2]
    assert "expected NODE.INPUT=VALUE" in messages[3]


def test_canvas_to_embed_carries_the_run_values(tmp_path: Path) -> None:
    loaded = load_workflow(write_json(tmp_path / "c.json", pipeline()), REG, overrides=["Sample.seed=11"])
    embed = loaded.canvas_to_embed(REG)
    assert embed is not None and embed["extra"] == pipeline()["extra"]
    assert embed["nodes"][2]["widgets_values"][0] == 11
    from_api = load_workflow(write_json(tmp_path / "a.json", EXPECTED), REG).canvas_to_embed(REG)
    assert from_api is not None and len(from_api["nodes"]) == 5
