"""Canvas behaviour a creator coming from the ecosystem's canvas expects (issue 19's broken items): subgraphs,
the Add Node menu, redo, context menus, readable examples, inline text, clear validation messages, and the
small things (Escape, Markdown notes, glyphs, the image viewer, widget labels)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.web.test_canvas import make_fast

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# Characters only an emoji or icon font has: a plain Linux machine draws a missing-glyph box for them.
SPECIAL_GLYPHS = r"/[\p{Extended_Pictographic}\u{E000}-\u{F8FF}]/u"

# Records every string litegraph draws, for the page's later `window.drawn` checks.
RECORD_TEXT = (
    "() => { window.drawn = new Set(); const fill = CanvasRenderingContext2D.prototype.fillText;"
    "CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {"
    "  window.drawn.add(String(text)); return fill.call(this, text, ...rest); }; }"
)


def menu_entries(canvas) -> list[str]:
    return canvas.page.locator(".litecontextmenu").last.locator(".litemenu-entry").all_inner_texts()


def right_click_title(canvas, node_id: int) -> None:
    x, y = canvas.js("const n = app.graph.getNodeById(arg); return [n.pos[0] + 30, n.pos[1] - 15];", node_id)
    canvas.page.mouse.click(*canvas.to_screen(x, y), button="right")
    canvas.page.locator(".litecontextmenu").first.wait_for()


def select(canvas, ids: list[int]) -> None:
    canvas.js("app.canvas.deselectAll(); for (const id of arg) app.canvas.select(app.graph.getNodeById(id));", ids)


def test_convert_to_subgraph_enter_edit_leave_and_queue(canvas) -> None:
    prompts = sorted(n["id"] for n in canvas.nodes() if n["type"] == "CLIPTextEncode")
    subgraph_node = convert_to_subgraph(canvas, prompts)
    canvas.shot("converted")
    assert canvas.js("return app.graph.getNodeById(arg).title;", subgraph_node) == "New Subgraph"
    assert not any(n["type"] == "CLIPTextEncode" for n in canvas.nodes())
    prompt = canvas.js("return app.prompt();")
    inner = sorted(k for k, v in prompt.items() if v["class_type"] == "CLIPTextEncode")
    assert len(inner) == 2 and all(k.startswith(f"{subgraph_node}:") for k in inner), prompt
    sampler = next(v for v in prompt.values() if v["class_type"] == "KSampler")
    assert {sampler["inputs"]["positive"][0], sampler["inputs"]["negative"][0]} == set(inner)

    # Enter through the node's title button; the breadcrumb shows where we are.
    x, y, w, h = canvas.js(
        "const n = app.graph.getNodeById(arg); app.canvas.draw(true, true);"
        "const a = n.title_buttons[0]._last_area; return [n.pos[0] + a[0], n.pos[1] + a[1], a[2], a[3]];",
        subgraph_node,
    )
    canvas.page.mouse.click(*canvas.to_screen(x + w / 2, y + h / 2))
    crumb = canvas.page.locator(".loom-breadcrumb")
    crumb.wait_for(state="visible")
    canvas.page.wait_for_timeout(200)
    canvas.shot("inside")
    assert canvas.js("return app.canvas.graph !== app.graph && app.canvas.graph._nodes.length;") == 2

    # Edit inside: the prompt text is typed into its box and reaches the queued prompt.
    inside = canvas.js("return app.canvas.graph._nodes.map(n => n.id).sort((a, b) => a - b);")
    box = canvas.page.locator(f'.loom-textarea[data-node-id="{inside[0]}"]')
    box.fill("a red fox in the snow")
    assert canvas.js("return app.prompt()[arg].inputs.text;", f"{subgraph_node}:{inside[0]}") == "a red fox in the snow"

    crumb.locator("button.root").click()
    assert canvas.js("return app.canvas.graph === app.graph;") is True
    assert crumb.is_hidden()

    make_fast(canvas)
    canvas.page.click("#queue-button")
    images = canvas.wait_for_images(canvas.node_id("SaveImage"))
    canvas.shot("queued")
    assert images and canvas.page.locator(".loom-validation").is_hidden()


def convert_to_subgraph(canvas, ids: list[int]) -> int:
    """Converts the nodes `ids` through the context menu; returns the new subgraph node's id."""
    select(canvas, ids)
    right_click_title(canvas, ids[0])
    canvas.page.locator(".litecontextmenu .litemenu-entry", has_text="Convert to Subgraph").click()
    subgraph_node = canvas.js("return app.graph._nodes.find(n => n.subgraph)?.id ?? null;")
    assert subgraph_node is not None, canvas.errors
    return subgraph_node


def test_validation_error_inside_a_subgraph_outlines_the_path(canvas) -> None:
    outer = convert_to_subgraph(canvas, [canvas.node_id("EmptyLatentImage"), canvas.node_id("KSampler")])
    inner = canvas.js(
        "const sg = app.graph.getNodeById(arg).subgraph; const k = sg._nodes.find(n => n.type === 'KSampler');"
        "k.widgets.find(w => w.name === 'seed').value = -5; return k.id;",
        outer,
    )
    canvas.page.click("#queue-button")
    item = canvas.page.locator(f'.loom-validation li[data-node-id="{outer}:{inner}"]')
    item.wait_for()
    sentence = "seed: value -5 is smaller than the minimum 0."
    assert item.inner_text() == f"New Subgraph › KSampler #{outer}:{inner}: {sentence}"
    assert canvas.js("return app.graph.getNodeById(arg).has_errors;", outer) is True
    canvas.shot("outer-outlined")

    item.click()  # opens the subgraph, where the node itself is outlined with its input marked
    assert canvas.js("return app.canvas.graph !== app.graph && app.canvas.graph.getNodeById(arg).has_errors;", inner)
    errors = canvas.js("return app.canvas.graph.getNodeById(arg).loom.errors;", inner)
    assert errors == [{"input": "seed", "message": "value -5 is smaller than the minimum 0."}]
    canvas.page.locator(".loom-breadcrumb").wait_for(state="visible")
    canvas.shot("inner-outlined")

    canvas.js("app.canvas.graph.getNodeById(arg).widgets.find(w => w.name === 'seed').value = 5;", inner)
    canvas.js("app.validation.clear();")
    assert canvas.js("return app.graph.getNodeById(arg).has_errors;", outer) is False
    assert canvas.js("return app.canvas.graph.getNodeById(arg).has_errors;", inner) is False


def test_widget_promoted_to_a_subgraph_input_feeds_the_inner_node(canvas) -> None:
    page = canvas.page
    make_fast(canvas)
    outer = convert_to_subgraph(canvas, [canvas.node_id("EmptyLatentImage"), canvas.node_id("KSampler")])
    inner = canvas.js(
        "const n = app.graph.getNodeById(arg); app.canvas.openSubgraph(n.subgraph); app.canvas.draw(true, true);"
        "const k = n.subgraph._nodes.find(n => n.type === 'KSampler'); app.canvas.centerOnNode(k); return k.id;",
        outer,
    )
    x, y = canvas.js("const n = app.canvas.graph.getNodeById(arg); return [n.pos[0] + 30, n.pos[1] - 15];", inner)
    page.mouse.click(*canvas.to_screen(x, y), button="right")
    page.locator(".litecontextmenu .litemenu-entry", has_text="Promote widget to subgraph input").click()
    page.locator(".litecontextmenu").last.locator(".litemenu-entry", has_text="steps").click()
    canvas.shot("promoted-inside")
    page.locator(".loom-breadcrumb button.root").click()

    # The subgraph node shows the widget; its value is what the inner KSampler is sent.
    names = canvas.js("return app.graph.getNodeById(arg).widgets.map(w => w.name);", outer)
    assert names == ["steps"]
    assert canvas.widget_value(outer, "steps") == 2
    canvas.js("app.graph.getNodeById(arg).widgets[0].value = 3; app.canvas.setDirty(true, true);", outer)
    canvas.shot("promoted-outside")
    prompt = canvas.js("return app.prompt();")
    assert prompt[f"{outer}:{inner}"]["inputs"]["steps"] == 3
    # The server's conversion of the saved file agrees (what `main.py run` and POST /workflow/convert do).
    server = canvas.js(
        "return fetch('/api/workflow/convert', {method: 'POST', body: JSON.stringify(app.graph.serialize())})"
        ".then(r => r.json());"
    )
    assert server[f"{outer}:{inner}"]["inputs"] == prompt[f"{outer}:{inner}"]["inputs"]

    # It survives a reload of the workflow, and the server runs it.
    canvas.js("app.loadWorkflow(JSON.parse(JSON.stringify(app.graph.serialize())));")
    assert canvas.js("return app.prompt()[arg].inputs.steps;", f"{outer}:{inner}") == 3
    page.click("#queue-button")
    assert canvas.wait_for_images(canvas.node_id("SaveImage"))
    assert page.locator(".loom-validation").is_hidden()


def test_add_node_menu_lists_categories(canvas) -> None:
    canvas.page.mouse.click(300, 700, button="right")
    canvas.page.locator(".litecontextmenu .litemenu-entry", has_text="Add Node").click()
    categories = menu_entries(canvas)
    canvas.shot("add-node")
    assert {"sampling", "loaders", "latent", "conditioning"} <= set(categories), categories
    canvas.page.locator(".litecontextmenu").last.locator(".litemenu-entry", has_text="sampling").first.click()
    assert "KSampler" in menu_entries(canvas)


def test_redo_survives_search_add_delete_undo(canvas) -> None:
    page = canvas.page
    # A node added last but linked upstream of the sampler: loading a state recomputes its execution order.
    added = canvas.add_node("empty latent", "EmptyLatentImage", (300, 700))
    canvas.connect(added, "LATENT", canvas.node_id("KSampler"), "latent_image")
    select(canvas, [added])
    page.locator("#graph-canvas").focus()
    page.keyboard.press("Delete")
    assert added not in {n["id"] for n in canvas.nodes()}
    page.keyboard.press("Control+z")
    assert added in {n["id"] for n in canvas.nodes()}
    page.keyboard.press("Shift")  # any gesture after an undo: its keyup must not be taken for an edit
    page.wait_for_timeout(100)
    page.keyboard.press("Control+y")
    assert added not in {n["id"] for n in canvas.nodes()}


def test_node_context_menu_lists_each_entry_once(canvas) -> None:
    right_click_title(canvas, canvas.node_id("KSampler"))
    canvas.shot("node-menu")
    entries = [e for e in menu_entries(canvas) if e.strip()]
    assert "Bypass" in entries and "Remove" in entries
    assert len(entries) == len(set(entries)), entries


@pytest.mark.parametrize("example", ["two_controlnets", "area_composition", "hires_fix_model_upscale"])
def test_examples_open_at_a_readable_scale(canvas, example) -> None:
    canvas.page.set_viewport_size({"width": 1366, "height": 768})
    canvas.page.click("#examples-button")
    canvas.page.locator(f'.loom-examples [data-example="{example}"]').click()
    canvas.page.wait_for_function("() => window.loom.app.graph._nodes.some(n => n.type === 'KSampler')")
    canvas.page.keyboard.press("Escape")
    canvas.page.locator(".loom-missing-models button.dismiss").click()
    canvas.shot(f"{example}-1366")
    scale, threshold, low = canvas.js(
        "app.canvas.draw(true, true);"
        "return [app.canvas.ds.scale, app.canvas.low_quality_zoom_threshold, app.canvas.low_quality];"
    )
    assert scale >= threshold and low is False


def test_examples_dialog_shows_each_example_once_with_its_description_and_thumbnail(canvas) -> None:
    canvas.page.click("#clear-button")
    canvas.page.click("#examples-button")
    cards = canvas.page.locator(".loom-examples .card")
    cards.first.wait_for()
    expected = sorted(p.stem for p in (ROOT / "workflows").glob("*.json") if not p.name.endswith(".api.json"))
    names = sorted(cards.evaluate_all("cards => cards.map(c => c.dataset.example)"))
    assert names == expected
    canvas.page.wait_for_timeout(500)
    canvas.shot("examples")
    for card in cards.all():
        assert card.locator("strong").inner_text().strip()
        assert card.locator(".description").inner_text().strip()
        drawn = card.locator("canvas.thumb").evaluate(
            "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"
        )
        assert drawn > 500
    canvas.page.locator('.loom-examples [data-example="txt2img"]').click()
    count = len(json.loads((ROOT / "workflows" / "txt2img.json").read_text())["nodes"])
    canvas.page.wait_for_function("(n) => window.loom.app.graph._nodes.length === n", arg=count)
    assert canvas.page.locator(".loom-examples").is_hidden()


def test_multiline_text_is_edited_in_place(canvas) -> None:
    node = canvas.node_id("CLIPTextEncode")
    box = canvas.page.locator(f'.loom-textarea[data-node-id="{node}"]')
    box.click()
    canvas.page.keyboard.press("Control+a")
    canvas.page.keyboard.type("first line")
    canvas.page.keyboard.press("Enter")
    canvas.page.keyboard.type("second line")
    canvas.shot("typed")
    assert canvas.widget_value(node, "text") == "first line\nsecond line"
    assert canvas.page.locator(".graphdialog").count() == 0
    assert node in {n["id"] for n in canvas.nodes()}


def test_validation_message_is_one_sentence(canvas) -> None:
    sampler = canvas.node_id("KSampler")
    canvas.js("app.graph.getNodeById(arg).widgets.find(w => w.name === 'seed').value = -5;", sampler)
    canvas.page.click("#queue-button")
    item = canvas.page.locator(f'.loom-validation li[data-node-id="{sampler}"]')
    item.wait_for()
    canvas.shot("validation")
    assert item.inner_text() == f"KSampler #{sampler}: seed: value -5 is smaller than the minimum 0."
    errors = canvas.js("return app.graph.getNodeById(arg).loom.errors;", sampler)
    assert errors == [{"input": "seed", "message": "value -5 is smaller than the minimum 0."}]


def test_escape_closes_menus_and_the_palette(canvas) -> None:
    page = canvas.page
    page.mouse.click(300, 700, button="right")
    page.locator(".litecontextmenu").first.wait_for()
    page.keyboard.press("Escape")
    assert page.locator(".litecontextmenu").count() == 0
    page.click("#examples-button")
    page.locator(".loom-examples .card").first.wait_for()
    page.keyboard.press("Escape")
    assert page.locator(".loom-examples").is_hidden()
    page.mouse.dblclick(300, 700)
    page.locator(".loom-palette input").wait_for(state="visible")
    page.keyboard.press("Escape")
    assert page.locator(".loom-palette").is_hidden()


def test_markdown_note_renders_markdown(canvas) -> None:
    note = canvas.js(
        "const n = window.loom.LiteGraph.createNode('MarkdownNote'); n.pos = [100, 650]; app.graph.add(n);"
        "n.widgets[0].value = '# Steps\\n\\nUse **two** passes:\\n- `low` denoise\\n- <b>no html</b>';"
        "app.canvas.ds.offset = [0, -400]; app.canvas.setDirty(true, true); return n.id;"
    )
    view = canvas.page.locator(f'.loom-markdown-note[data-node-id="{note}"] .loom-markdown')
    view.wait_for()
    canvas.shot("markdown")
    assert view.locator("h1").inner_text() == "Steps"
    assert view.locator("strong").inner_text() == "two"
    assert view.locator("li code").inner_text() == "low"
    assert view.locator("b").count() == 0 and "<b>no html</b>" in view.inner_text()


def test_no_text_needs_an_emoji_or_icon_font(canvas) -> None:
    canvas.page.evaluate(RECORD_TEXT)
    prompts = sorted(n["id"] for n in canvas.nodes() if n["type"] == "CLIPTextEncode")
    canvas.js("app.graph.getNodeById(arg).pin(true);", canvas.node_id("KSampler"))
    select(canvas, prompts)
    canvas.js(
        "app.graph.convertToSubgraph(app.canvas.selectedItems);"
        "app.canvas.setDirty(true, true); app.canvas.draw(true, true);"
    )
    canvas.shot("pinned-and-subgraph")
    drawn = canvas.page.evaluate(f"() => [...window.drawn].filter(t => {SPECIAL_GLYPHS}.test(t))")
    assert drawn == []
    right_click_title(canvas, canvas.node_id("KSampler"))
    menu = canvas.page.evaluate(
        "() => [...document.querySelectorAll('.litemenu-entry')].map(e => e.textContent)"
        f".filter(t => {SPECIAL_GLYPHS}.test(t))"
    )
    assert menu == []


def test_viewer_scales_small_images_up_and_steps_through_a_batch(canvas) -> None:
    urls = []
    for color in [(200, 30, 30), (30, 200, 30)]:
        buffer = io.BytesIO()
        Image.new("RGB", (40, 40), color).save(buffer, "PNG")
        urls.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    save = canvas.node_id("SaveImage")
    canvas.js("const n = app.graph.getNodeById(arg.id); n.loom.imageUrls = arg.urls;", {"id": save, "urls": urls})
    x, y = canvas.js(  # in view and drawn first: the workflow may open with the node off screen or under another
        "const n = app.graph.getNodeById(arg); app.canvas.ds.scale = 1; app.canvas.centerOnNode(n);"
        "app.canvas.draw(true, true); return [n.pos[0] + n.size[0] / 2, n.pos[1] + n.size[1] / 2];",
        save,
    )
    canvas.page.mouse.dblclick(*canvas.to_screen(x, y))
    image = canvas.page.locator(".loom-lightbox img")
    image.wait_for()
    canvas.shot("viewer")
    assert image.bounding_box()["width"] >= 400
    assert image.get_attribute("src") == urls[0]
    canvas.page.keyboard.press("ArrowRight")
    assert image.get_attribute("src") == urls[1]
    canvas.page.locator(".loom-lightbox button.prev").click()
    assert image.get_attribute("src") == urls[0]
    canvas.page.keyboard.press("Escape")
    assert canvas.page.locator(".loom-lightbox").count() == 0


def test_widget_labels_are_drawn_whole(canvas) -> None:
    canvas.page.evaluate(RECORD_TEXT)
    labels = canvas.js(
        "app.canvas.ds.scale = 1; app.canvas.centerOnNode(app.graph._nodes.find(n => n.type === 'KSampler'));"
        "app.canvas.draw(true, true); const out = [];"
        "for (const n of app.canvas.visible_nodes) for (const w of n.widgets ?? [])"
        "  if (w.type !== 'button' && !w.options?.multiline) out.push(w.label ?? w.name);"
        "return out;"
    )
    assert "control_after_generate" in labels
    drawn = set(canvas.page.evaluate("() => [...window.drawn]"))
    assert [label for label in labels if label not in drawn] == []
