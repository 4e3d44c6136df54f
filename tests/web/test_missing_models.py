"""The canvas's Missing models panel (web/src/missing_models.ts): example workflows name real model files; a fresh
server has only Loom's demo stand-ins, which the panel offers and applies everywhere the missing name is used."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.web.test_canvas import make_fast

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
LORA = "add_detail.safetensors"
DEMO_CHECKPOINT = "loom-demo-tiny-sd15.safetensors"
DEMO_LORA = "loom-demo-tiny-lora.safetensors"


def open_example(canvas, name: str) -> None:
    """Opens an example: canvas files from the Examples dialog, API-format twins as a file would be loaded."""
    if name.endswith(".api.json"):
        canvas.js(
            "return fetch(`${app.api.base}/workflows/${arg}`).then(r => r.json()).then(d => app.loadWorkflow(d));", name
        )
        return
    canvas.page.click("#examples-button")
    canvas.page.locator(f'.loom-examples [data-example="{name.removesuffix(".json")}"]').click()


def models_of(canvas) -> dict[str, str]:
    """Every model-file widget value on the canvas, as `type.input` -> value."""
    return canvas.js(
        "const out = {}; for (const n of app.graph._nodes) for (const w of n.widgets ?? [])"
        "  if (['ckpt_name', 'lora_name'].includes(w.name)) out[`${n.type}.${w.name}`] = w.value; return out;"
    )


def test_example_on_demo_files_is_fixed_and_runs(open_canvas, own_server) -> None:
    schema = own_server.start()
    canvas = open_canvas(own_server.url)
    open_example(canvas, "lora.json")
    panel = canvas.page.locator(".loom-missing-models")
    panel.wait_for(state="visible")
    canvas.shot("missing-models")
    checkpoint = panel.locator(f'select[data-missing="{CHECKPOINT}"]')
    lora = panel.locator(f'select[data-missing="{LORA}"]')
    assert checkpoint.input_value() == DEMO_CHECKPOINT
    assert lora.input_value() == DEMO_LORA
    offered = lora.locator("option").evaluate_all("options => options.map(o => o.value).filter(Boolean)")
    assert offered == schema["LoraLoader"]["input"]["required"]["lora_name"][0]
    text = panel.inner_text()
    assert "Load Checkpoint #4 · ckpt_name" in text and "Load LoRA #10 · lora_name" in text
    assert models_of(canvas) == {"CheckpointLoaderSimple.ckpt_name": CHECKPOINT, "LoraLoader.lora_name": LORA}

    panel.locator("button.apply").click()
    assert panel.is_hidden()
    fixed = {"CheckpointLoaderSimple.ckpt_name": DEMO_CHECKPOINT, "LoraLoader.lora_name": DEMO_LORA}
    assert models_of(canvas) == fixed
    canvas.page.click("#undo-button")
    assert models_of(canvas) == {"CheckpointLoaderSimple.ckpt_name": CHECKPOINT, "LoraLoader.lora_name": LORA}
    canvas.page.click("#redo-button")
    assert models_of(canvas) == fixed

    make_fast(canvas)
    canvas.page.click("#queue-button")
    images = canvas.wait_for_images(canvas.node_id("SaveImage"))
    canvas.shot("ran")
    assert images and canvas.page.locator(".loom-validation").is_hidden()
    with urllib.request.urlopen(f"{own_server.url}/history") as res:
        history = json.load(res)
    saved = [img for job in history.values() for out in job["outputs"].values() for img in out.get("images", [])]
    assert saved and all((own_server.base / "output" / img["subfolder"] / img["filename"]).is_file() for img in saved)


def test_dismiss_leaves_api_format_workflow_unchanged(canvas) -> None:
    open_example(canvas, "lora.api.json")
    panel = canvas.page.locator(".loom-missing-models")
    panel.wait_for(state="visible")
    assert panel.locator(f'select[data-missing="{LORA}"]').input_value() == DEMO_LORA
    panel.locator("button.dismiss").click()
    canvas.shot("dismissed")
    assert panel.is_hidden()
    assert models_of(canvas) == {"CheckpointLoaderSimple.ckpt_name": CHECKPOINT, "LoraLoader.lora_name": LORA}


def test_value_not_in_list_from_queueing_opens_the_panel(canvas) -> None:
    loader = canvas.node_id("CheckpointLoaderSimple")
    canvas.js("app.graph.getNodeById(arg).widgets[0].value = 'deleted-meanwhile.safetensors';", loader)
    canvas.page.click("#queue-button")
    panel = canvas.page.locator(".loom-missing-models")
    panel.wait_for(state="visible")
    canvas.shot("queue-400")
    assert canvas.page.locator(".loom-validation").is_visible()
    select = panel.locator('select[data-missing="deleted-meanwhile.safetensors"]')
    assert select.input_value() == DEMO_CHECKPOINT
    assert f"#{loader} · ckpt_name" in panel.inner_text()
    panel.locator("button.apply").click()
    assert canvas.widget_value(loader, "ckpt_name") == DEMO_CHECKPOINT
    assert canvas.page.locator(".loom-validation").is_hidden()
    assert canvas.js("return app.graph.getNodeById(arg).has_errors;", loader) is False


def wait_hashed(url: str) -> list[dict]:
    """The server's model index once its background hasher is done."""
    for _ in range(200):
        with urllib.request.urlopen(f"{url}/models/index") as res:
            index = json.load(res)
        if index["pending"] == 0:
            return index["files"]
        time.sleep(0.1)
    raise TimeoutError("the model index was not hashed")


def test_saved_workflow_records_hashes_and_a_renamed_copy_is_proposed_first(open_canvas, own_server) -> None:
    checkpoints = own_server.base / "models" / "checkpoints"
    (checkpoints / "team").mkdir(parents=True)
    (checkpoints / "team" / "house-style-v3.safetensors").write_bytes(b"house style weights")
    own_server.start()
    files = wait_hashed(own_server.url)
    house = next(f for f in files if f["name"] == "team/house-style-v3.safetensors")
    canvas = open_canvas(own_server.url)
    loader = canvas.node_id("CheckpointLoaderSimple")
    canvas.js("const w = app.graph.getNodeById(arg).widgets[0]; w.value = 'team/house-style-v3.safetensors';", loader)
    with canvas.page.expect_download() as download:
        canvas.page.click("#save-button")
    saved = json.loads(Path(download.value.path()).read_text())
    [node] = [n for n in saved["nodes"] if n["type"] == "CheckpointLoaderSimple"]
    assert node["properties"]["models"] == [
        {
            "name": "team/house-style-v3.safetensors",
            "directory": "checkpoints",
            "hash": house["sha256"],
            "hash_type": "SHA256",
        }
    ]

    # The reader has the same file under another name: the panel offers it first, found by its hash.
    (checkpoints / "team" / "house-style-v3.safetensors").rename(checkpoints / "house.safetensors")
    (checkpoints / "other.safetensors").write_bytes(b"something else")
    wait_hashed(own_server.url)
    canvas.js("app.loadWorkflow(arg);", saved)
    panel = canvas.page.locator(".loom-missing-models")
    panel.wait_for(state="visible")
    select = panel.locator('select[data-missing="team/house-style-v3.safetensors"]')
    assert select.input_value() == "house.safetensors"
    labels = select.locator("option").evaluate_all("options => options.map(o => o.textContent)")
    assert "house.safetensors (same file, by hash)" in labels
    assert "loom-demo-tiny-sd15.safetensors" in labels or "other.safetensors" in labels
    canvas.shot("proposed-by-hash")
    panel.locator("button.apply").click()
    assert canvas.widget_value(canvas.node_id("CheckpointLoaderSimple"), "ckpt_name") == "house.safetensors"
