"""End-to-end tests of the canvas in web/: a real Loom server, Debian's Chromium, the tiny demo model.

Every step saves a screenshot under test-artifacts/web/.
"""

from __future__ import annotations

import base64
import io
import json
import random
import urllib.request

import pytest
from PIL import Image, PngImagePlugin
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TXT2IMG = ["CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage"]


def set_widget(canvas, node_id: int, name: str, value: object) -> None:
    canvas.js(
        "app.graph.getNodeById(arg.id).widgets.find(w => w.name === arg.name).value = arg.value;",
        {"id": node_id, "name": name, "value": value},
    )


def make_fast(canvas, steps: int = 2) -> None:
    """Small latents, few steps and a fixed seed, so a run on the demo model takes a moment."""
    canvas.js(
        "for (const n of app.graph._nodes) for (const w of n.widgets ?? []) {"
        "  if (n.type === 'EmptyLatentImage' && (w.name === 'width' || w.name === 'height')) w.value = 64;"
        "  if (n.type === 'KSampler' && w.name === 'steps') w.value = arg;"
        "  if (w.name === 'control_after_generate') w.value = 'fixed';"
        "} app.canvas.setDirty(true, true);",
        steps,
    )


def new_seed(canvas) -> None:
    """A seed no earlier test of the session used, so the run is not served whole from the cache."""
    canvas.js(
        "for (const n of app.graph._nodes)"
        "  if (n.type === 'KSampler') n.widgets.find(w => w.name === 'seed').value = arg;",
        random.randrange(10**6, 10**9),
    )


def test_page_loads_default_workflow_without_console_errors(canvas, loom_server) -> None:
    canvas.page.wait_for_selector(".status.open")
    canvas.shot("loaded")
    types = sorted(n["type"] for n in canvas.nodes())
    assert types == sorted([*TXT2IMG, "CLIPTextEncode"])
    first_checkpoint = loom_server.schema["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0][0]
    assert canvas.widget_value(canvas.node_id("CheckpointLoaderSimple"), "ckpt_name") == first_checkpoint
    assert canvas.errors == []


def test_build_txt2img_from_palette_and_queue(canvas, loom_server) -> None:
    page = canvas.page
    page.click("#clear-button")
    assert canvas.nodes() == []
    ckpt = canvas.add_node("checkpoint", "CheckpointLoaderSimple", (120, 300))
    pos = canvas.add_node("clip text", "CLIPTextEncode", (520, 120))
    neg = canvas.add_node("clip text", "CLIPTextEncode", (520, 420))
    latent = canvas.add_node("empty latent", "EmptyLatentImage", (520, 690))
    sampler = canvas.add_node("ksampler", "KSampler", (880, 160))
    decode = canvas.add_node("vae decode", "VAEDecode", (880, 480))
    save = canvas.add_node("save image", "SaveImage", (1060, 600))
    canvas.shot("nodes-added")
    canvas.connect(ckpt, "MODEL", sampler, "model")
    canvas.connect(ckpt, "CLIP", pos, "clip")
    canvas.connect(ckpt, "CLIP", neg, "clip")
    canvas.connect(pos, "CONDITIONING", sampler, "positive")
    canvas.connect(neg, "CONDITIONING", sampler, "negative")
    canvas.connect(latent, "LATENT", sampler, "latent_image")
    canvas.connect(sampler, "LATENT", decode, "samples")
    canvas.connect(ckpt, "VAE", decode, "vae")
    canvas.connect(decode, "IMAGE", save, "images")
    canvas.js("app.graph.getNodeById(arg).widgets.find(w => w.name === 'text').value = 'a red apple';", pos)
    make_fast(canvas)
    canvas.shot("wired")

    page.click("#queue-button")
    urls = canvas.wait_for_images(save)
    canvas.wait_idle()
    canvas.shot("image-shown")
    with urllib.request.urlopen(loom_server.url + urls[0]) as res:
        assert res.headers["Content-Type"].startswith("image/")
        png = res.read()
    Image.open(io.BytesIO(png)).verify()
    assert page.locator(".gallery-grid img").count() >= 1
    page.locator(".gallery-grid img").first.click()
    page.wait_for_selector(".loom-lightbox img")
    canvas.shot("full-size")
    assert page.evaluate("() => document.querySelector('.loom-lightbox img').naturalWidth") > 0
    page.locator(".loom-lightbox img").click()

    # The saved PNG carries the workflow: dropping it restores the graph that made it.
    page.click("#clear-button")
    drop_file(canvas, "output.png", "image/png", png)
    page.wait_for_function("() => window.loom.app.graph._nodes.length === 7")
    canvas.shot("png-restored")
    texts = canvas.js("return app.graph._nodes.filter(n => n.type === 'CLIPTextEncode').map(n => n.widgets[0].value);")
    assert "a red apple" in texts


def test_changed_widget_requeue_marks_cached_nodes(canvas) -> None:
    make_fast(canvas)
    save = canvas.node_id("SaveImage")
    sampler = canvas.node_id("KSampler")
    set_widget(canvas, sampler, "seed", random.randrange(10**6, 10**9))  # a run no earlier test made
    canvas.page.click("#queue-button")
    first = canvas.wait_for_images(save)
    canvas.wait_idle()
    canvas.shot("first-run")

    steps_before = canvas.widget_value(sampler, "steps")
    canvas.page.mouse.click(*canvas.widget(sampler, "steps", "right"))
    assert canvas.widget_value(sampler, "steps") == steps_before + 1
    canvas.page.keyboard.press("Control+Enter")
    canvas.wait_for_images(save, previous=first)
    canvas.wait_idle()
    canvas.shot("second-run-cached")
    cached = set(canvas.js("return app.graph._nodes.filter(n => n.loom.cached).map(n => n.type);"))
    assert {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage"} <= cached
    assert "KSampler" not in cached and "VAEDecode" not in cached


def test_validation_error_outlines_the_offending_node(canvas) -> None:
    decode = canvas.node_id("VAEDecode")
    canvas.js("const n = app.graph.getNodeById(arg); n.disconnectInput(n.findInputSlot('vae'));", decode)
    canvas.page.click("#queue-button")
    panel = canvas.page.locator(".loom-validation")
    panel.wait_for(state="visible")
    canvas.shot("validation-error")
    flagged = canvas.js("return app.graph._nodes.filter(n => n.has_errors).map(n => n.id);")
    assert flagged == [decode]
    errors = canvas.js("return app.graph.getNodeById(arg).loom.errors;", decode)
    assert any(e.get("input") == "vae" for e in errors), errors
    assert panel.locator(f'li[data-node-id="{decode}"]').count() >= 1
    assert "vae" in panel.inner_text()
    assert canvas.js("return app.queuePanel.state.queue_pending.length;") == 0


def drop_file(canvas, name: str, mime: str, payload: bytes, at: tuple[float, float] = (0, 0)) -> None:
    """Dispatches a real drop event carrying one file onto the canvas, at screen position `at`."""
    canvas.page.evaluate(
        "(arg) => { const bytes = Uint8Array.from(atob(arg.data), c => c.charCodeAt(0));"
        " const dt = new DataTransfer(); dt.items.add(new File([bytes], arg.name, {type: arg.mime}));"
        " document.getElementById('graph-canvas').dispatchEvent(new DragEvent('drop',"
        "   {dataTransfer: dt, bubbles: true, cancelable: true, clientX: arg.x, clientY: arg.y})); }",
        {"name": name, "mime": mime, "data": base64.b64encode(payload).decode(), "x": at[0], "y": at[1]},
    )


def test_drag_and_drop_workflow_json_and_png(canvas) -> None:
    workflow = canvas.js("return app.graph.serialize();")
    sampler = next(n for n in workflow["nodes"] if n["type"] == "KSampler")
    sampler["title"] = "Dropped sampler"
    workflow["nodes"] = [n for n in workflow["nodes"] if n["type"] != "SaveImage"]
    drop_file(canvas, "flow.json", "application/json", json.dumps(workflow).encode())
    canvas.page.wait_for_function("() => window.loom.app.graph._nodes.some(n => n.title === 'Dropped sampler')")
    canvas.shot("json-dropped")
    assert len(canvas.nodes()) == 6

    sampler["title"] = "From a PNG"
    info = PngImagePlugin.PngInfo()
    info.add_text("workflow", json.dumps(workflow))
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, "PNG", pnginfo=info)
    drop_file(canvas, "image.png", "image/png", buffer.getvalue())
    canvas.page.wait_for_function("() => window.loom.app.graph._nodes.some(n => n.title === 'From a PNG')")
    canvas.shot("png-dropped")


def test_save_load_round_trip(canvas, tmp_path) -> None:
    page = canvas.page
    canvas.js("app.graph.getNodeById(arg).title = 'Renamed';", canvas.node_id("KSampler"))
    with page.expect_download() as download:
        page.click("#save-button")
    saved = tmp_path / "saved.json"
    download.value.save_as(saved)
    original = json.loads(saved.read_text())
    # every widget has its input slot in the file, as current front ends write them
    ksampler = next(n for n in original["nodes"] if n["type"] == "KSampler")
    slots = {i["widget"]["name"] for i in ksampler["inputs"] if "widget" in i}
    assert slots == {"seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"}
    page.click("#clear-button")
    assert canvas.nodes() == []
    page.set_input_files("#file-input", str(saved))
    page.wait_for_function("() => window.loom.app.graph._nodes.length === 7")
    canvas.shot("reloaded")
    # ... yet on the canvas an unlinked widget stays a widget, not a socket
    sockets = canvas.js("return app.graph.getNodeById(arg).inputs.map(i => i.name);", canvas.node_id("KSampler"))
    assert sockets == ["model", "positive", "negative", "latent_image"]
    with page.expect_download() as download:
        page.click("#save-button")
    again = tmp_path / "again.json"
    download.value.save_as(again)
    assert json.loads(again.read_text()) == original


def test_last_workflow_survives_reload_and_undo_redo(canvas, loom_server) -> None:
    page = canvas.page
    node = canvas.node_id("EmptyLatentImage")
    page.mouse.click(*canvas.widget(node, "batch_size", "right"))
    assert canvas.widget_value(node, "batch_size") == 2
    page.keyboard.press("Control+z")
    assert canvas.widget_value(node, "batch_size") == 1
    page.keyboard.press("Control+y")
    assert canvas.widget_value(node, "batch_size") == 2
    page.wait_for_timeout(600)
    page.reload()
    page.wait_for_function("() => window.loom && window.loom.app.timings.ready")
    canvas.shot("reloaded")
    assert canvas.widget_value(canvas.node_id("EmptyLatentImage"), "batch_size") == 2


def test_mute_bypass_and_widget_conversion_shape_the_queued_prompt(canvas) -> None:
    decode = canvas.node_id("VAEDecode")
    sampler = canvas.node_id("KSampler")
    canvas.page.mouse.click(
        *canvas.to_screen(
            *canvas.js("const n = app.graph.getNodeById(arg); return [n.pos[0] + 40, n.pos[1] - 15];", decode)
        )
    )
    canvas.page.keyboard.press("Control+m")
    prompt = canvas.js("return app.prompt();")
    assert str(decode) not in prompt
    assert not any(n["class_type"] == "SaveImage" for n in prompt.values())
    canvas.page.keyboard.press("Control+m")
    canvas.page.keyboard.press("Control+b")
    canvas.shot("bypassed")
    prompt = canvas.js("return app.prompt();")
    assert str(decode) not in prompt
    save = next(n for n in prompt.values() if n["class_type"] == "SaveImage")
    assert "images" not in save["inputs"]  # no input of VAEDecode has its output type IMAGE: nothing passes
    canvas.page.keyboard.press("Control+b")

    # A bypassed sampler passes its LATENT input through; a reroute is followed to its source.
    canvas.js(
        "const s = app.graph.getNodeById(arg.sampler); s.mode = 4;"
        "const d = app.graph.getNodeById(arg.decode); const save = app.graph._nodes.find(n => n.type === 'SaveImage');"
        "const r = window.loom.LiteGraph.createNode('Reroute'); r.pos = [1300, 500]; app.graph.add(r);"
        "d.connect(0, r, 0); r.connect(0, save, 0);",
        {"sampler": sampler, "decode": decode},
    )
    prompt = canvas.js("return app.prompt();")
    latent = canvas.node_id("EmptyLatentImage")
    assert str(sampler) not in prompt
    assert prompt[str(decode)]["inputs"]["samples"] == [str(latent), 0]
    save = next(n for n in prompt.values() if n["class_type"] == "SaveImage")
    assert save["inputs"]["images"] == [str(decode), 0]
    assert not any(n["class_type"] == "Reroute" for n in prompt.values())
    canvas.page.keyboard.press("Control+z")

    canvas.js("window.loom.app.canvas.deselectAll();")
    convert = canvas.page.get_by_text("Convert widget to input")
    for _ in range(3):  # a redraw that lands between press and release can swallow the menu; ask again
        canvas.page.mouse.click(*canvas.widget(sampler, "seed", "middle"), button="right")
        try:
            convert.wait_for(timeout=5000)
            break
        except PlaywrightTimeout:
            continue
    convert.click()
    canvas.page.locator(".litecontextmenu .litemenu-entry", has_text="seed").last.click()
    canvas.shot("seed-converted")
    slot = canvas.js("return app.graph.getNodeById(arg).inputs.find(i => i.widget?.name === 'seed')?.name;", sampler)
    assert slot == "seed"
    workflow = canvas.js("return app.graph.serialize();")
    node = next(n for n in workflow["nodes"] if n["id"] == sampler)
    assert any(i.get("widget") == {"name": "seed"} for i in node["inputs"])
    assert node["widgets_values"][1] == "randomize"

    canvas.page.mouse.click(*canvas.widget(sampler, "steps", "middle"), button="right")
    canvas.page.get_by_text("Convert input to widget").click()
    canvas.page.locator(".litecontextmenu .litemenu-entry", has_text="seed").last.click()
    assert canvas.js("return app.graph.getNodeById(arg).inputs.some(i => i.widget);", sampler) is False


def test_interrupt_a_long_run(canvas) -> None:
    make_fast(canvas, steps=10000)
    canvas.page.click("#queue-button")
    canvas.page.wait_for_function(
        "() => { const a = window.loom.app; const n = a.graph.getNodeById(a.runningNode);"
        " return n && n.type === 'KSampler' && n.progress > 0; }",
        timeout=120_000,
    )
    canvas.page.locator(".queue-item.running").wait_for()
    canvas.page.click("#queue-button")
    pending = canvas.page.locator(".queue-item.pending")
    pending.wait_for()
    canvas.shot("running-and-pending")
    pending.locator("button.cancel").click()
    pending.wait_for(state="detached")
    canvas.page.locator(".queue-item.running button.interrupt").click()
    canvas.page.get_by_text("Run interrupted").wait_for(timeout=60_000)
    canvas.wait_idle()
    canvas.shot("interrupted")
    assert canvas.js("return app.graph.getNodeById(arg).loom.imageUrls.length;", canvas.node_id("SaveImage")) == 0


def test_batch_count_queues_several_runs(canvas) -> None:
    make_fast(canvas)
    sampler = canvas.node_id("KSampler")
    canvas.js(
        "app.graph.getNodeById(arg).widgets.find(w => w.name === 'control_after_generate').value = 'increment';",
        sampler,
    )
    seed = random.randrange(10**6, 10**9)  # runs no earlier test made, so neither comes from the cache
    canvas.js(
        "app.graph.getNodeById(arg.id).widgets.find(w => w.name === 'seed').value = arg.seed;",
        {"id": sampler, "seed": seed},
    )
    shown = canvas.page.locator(".gallery-grid img").count()
    canvas.page.fill("#batch-count", "2")
    canvas.page.click("#queue-button")
    canvas.page.locator(".loom-toast", has_text="Queued 2 runs").wait_for()
    assert canvas.widget_value(sampler, "seed") == seed + 2
    canvas.wait_idle()
    canvas.page.wait_for_function(
        "(n) => document.querySelectorAll('.gallery-grid img').length >= n + 2", arg=shown, timeout=120_000
    )
    canvas.shot("two-runs")


def test_incompatible_link_is_refused_with_a_hint(canvas) -> None:
    latent = canvas.node_id("EmptyLatentImage")
    decode = canvas.node_id("VAEDecode")
    before = canvas.js("const n = app.graph.getNodeById(arg); return n.inputs[n.findInputSlot('vae')].link;", decode)
    canvas.drag(canvas.slot(latent, "LATENT", output=True), canvas.slot(decode, "vae", output=False))
    canvas.page.locator(".loom-toast", has_text="Cannot connect LATENT").wait_for()
    canvas.shot("refused")
    after = canvas.js("const n = app.graph.getNodeById(arg); return n.inputs[n.findInputSlot('vae')].link;", decode)
    assert after == before


def test_copy_paste_and_group(canvas) -> None:
    page = canvas.page
    sampler = canvas.node_id("KSampler")
    title = canvas.js("const n = app.graph.getNodeById(arg); return [n.pos[0] + 60, n.pos[1] - 15];", sampler)
    page.mouse.click(*canvas.to_screen(*title))
    page.keyboard.press("Control+c")
    page.mouse.move(700, 760)
    page.keyboard.press("Control+v")
    assert [n["type"] for n in canvas.nodes()].count("KSampler") == 2
    page.keyboard.press("Control+a")
    page.keyboard.press("Control+g")
    canvas.shot("pasted-and-grouped")
    groups = canvas.js("return app.graph.serialize().groups;")
    assert len(groups) == 1


def test_reconnects_after_a_server_restart(open_canvas, own_server) -> None:
    own_server.start()
    canvas = open_canvas(own_server.url)
    canvas.page.wait_for_selector(".status.open")
    own_server.stop()
    canvas.page.wait_for_selector(".status.closed")
    canvas.shot("server-down")
    own_server.start()
    canvas.page.wait_for_selector(".status.open", timeout=30_000)
    canvas.page.locator(".loom-toast", has_text="Reconnected").wait_for()
    canvas.shot("reconnected")
    assert canvas.js("return app.socket.connected;") is True


def test_refresh_rereads_model_folders(canvas, loom_server) -> None:
    added = loom_server.base / "models" / "checkpoints" / "zzz_refresh_test.safetensors"
    added.parent.mkdir(parents=True, exist_ok=True)
    added.write_bytes(b"")
    try:
        loader = canvas.node_id("CheckpointLoaderSimple")
        choices = "return app.graph.getNodeById(arg).widgets.find(w => w.name === 'ckpt_name').options.values;"
        assert added.name not in canvas.js(choices, loader)
        canvas.page.click("#refresh-button")
        canvas.page.wait_for_function(
            "(a) => window.loom.app.graph.getNodeById(a.id).widgets[0].options.values.includes(a.name)",
            arg={"id": loader, "name": added.name},
        )
        canvas.shot("refreshed")
        assert added.name in canvas.js(choices, loader)
    finally:
        added.unlink()


def test_primitive_node_feeds_a_converted_widget(canvas) -> None:
    workflow = canvas.js("return app.graph.serialize();")
    sampler = next(n for n in workflow["nodes"] if n["type"] == "KSampler")
    sampler["inputs"].append({"name": "seed", "type": "INT", "link": 99, "widget": {"name": "seed"}})
    primitive = {"id": 50, "type": "PrimitiveNode", "pos": [500, 700], "size": [240, 80], "flags": {}, "order": 0}
    primitive |= {"mode": 0, "properties": {}, "widgets_values": [1234, "increment"]}
    primitive["outputs"] = [{"name": "INT", "type": "INT", "links": [99], "widget": {"name": "seed"}}]
    workflow["nodes"].append(primitive)
    workflow["links"].append([99, 50, 0, sampler["id"], len(sampler["inputs"]) - 1, "INT"])
    workflow["last_link_id"] = 99
    drop_file(canvas, "primitive.json", "application/json", json.dumps(workflow).encode())
    canvas.page.wait_for_function("() => window.loom.app.graph.getNodeById(50)?.widgets?.length === 2")
    canvas.shot("primitive")
    prompt = canvas.js("return app.prompt();")
    assert "50" not in prompt
    assert prompt[str(sampler["id"])]["inputs"]["seed"] == 1234


def test_runtime_error_shows_node_message_and_traceback(canvas, loom_server) -> None:
    broken = loom_server.base / "models" / "checkpoints" / "zzz_broken.safetensors"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"this is not a checkpoint")
    try:
        canvas.page.click("#refresh-button")
        loader = canvas.node_id("CheckpointLoaderSimple")
        canvas.page.wait_for_function(
            "(a) => window.loom.app.graph.getNodeById(a.id).widgets[0].options.values.includes(a.name)",
            arg={"id": loader, "name": broken.name},
        )
        canvas.js("app.graph.getNodeById(arg.id).widgets[0].value = arg.name;", {"id": loader, "name": broken.name})
        make_fast(canvas)
        canvas.page.click("#queue-button")
        dialog = canvas.page.locator(".loom-error-dialog")
        dialog.wait_for(timeout=120_000)
        assert f"#{loader}" in dialog.locator("h3").inner_text()
        assert dialog.locator(".message").inner_text().strip()
        dialog.locator("summary").click()
        canvas.shot("runtime-error")
        assert dialog.locator("pre").is_visible()
        assert canvas.js("return app.graph.getNodeById(arg).has_errors;", loader) is True
    finally:
        broken.unlink()


def test_open_an_example_workflow(canvas) -> None:
    canvas.page.click("#examples-button")
    entry = canvas.page.locator('.loom-examples [data-example="txt2img"]')
    entry.wait_for()
    canvas.shot("examples-menu")
    entry.click()
    canvas.page.wait_for_function("() => window.loom.app.graph._nodes.some(n => n.type === 'KSampler')")
    canvas.shot("example-open")
    types = {n["type"] for n in canvas.nodes()}
    assert {"CheckpointLoaderSimple", "KSampler", "SaveImage"} <= types
    assert canvas.page.locator(".loom-toast.error").count() == 0


def test_image_dropped_on_load_image_is_uploaded_and_selected(canvas, loom_server) -> None:
    node = canvas.add_node("load image", "LoadImage", (300, 700))
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (20, 200, 90)).save(buffer, "PNG")
    center = canvas.to_screen(
        *canvas.js("const n = app.graph.getNodeById(arg); return [n.pos[0] + 60, n.pos[1] + 20];", node)
    )
    drop_file(canvas, "green square.png", "image/png", buffer.getvalue(), at=center)
    canvas.page.wait_for_function(
        "(id) => window.loom.app.graph.getNodeById(id).widgets[0].value === 'green square.png'", arg=node
    )
    canvas.page.wait_for_function(
        "(id) => window.loom.app.graph.getNodeById(id).loom.images[0]?.naturalWidth === 40", arg=node
    )
    canvas.shot("uploaded")
    assert (loom_server.base / "input" / "green square.png").is_file()


def test_pack_extensions_are_loaded(canvas) -> None:
    assert canvas.page.evaluate("() => window.webTestPackSetup") is True
    node = canvas.add_node("web test echo", "WebTestEcho", (300, 700))
    assert canvas.js("return app.graph.getNodeById(arg).properties.webTestPackSeen;", node) is True
