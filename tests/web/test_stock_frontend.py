"""ComfyUI's stock front end (`--front-end comfyui`, the comfyui-frontend-package wheel pinned in
requirements-dev.txt) on Loom, used as a new user would: it boots without an error dialog, lists Loom's nodes and
examples, runs the default workflow on the demo checkpoint, saves and reopens a workflow, keeps a setting across a
reload, and shows the model library and the server's logs."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.ensure_browser import CHROMIUM, CHROMIUM_ARGS
from tests.web.conftest import ARTIFACTS, ServerProcess, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEMO_CHECKPOINT = "loom-demo-tiny-sd15.safetensors"
WORKFLOW_NAME = "loom stock test"
TOKEN = "tok-stock-7c1e"
# The one page error 1.27.10 itself raises on a fresh profile (its canvas-navigation setting changes a setting it
# has not registered yet); it happens on the reference server too and is no dialog.
KNOWN_FRONT_END_ERRORS = ("Cannot read properties of undefined (reading 'id')",)


class StockPage:
    """The stock front end in a page: its page errors, error toasts and dialogs, and helpers over `window.app`."""

    def __init__(self, page, name: str) -> None:
        self.page = page
        self.name = name
        self.page_errors: list[str] = []
        self.step = 0
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def open(self, url: str) -> None:
        self.page.goto(url + "/")
        self.wait_ready()

    def wait_ready(self) -> None:
        self.page.wait_for_function("() => window.app && window.app.graph && window.app.extensionManager")
        self.page.get_by_role("button", name="Run", exact=True).wait_for(state="visible")

    def js(self, body: str, arg: object = None) -> object:
        return self.page.evaluate(f"async (arg) => {{ const app = window.app; {body} }}", arg)

    def shot(self, label: str) -> None:
        self.step += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"stock-{self.name}-{self.step:02d}-{label}.png"))

    def assert_no_errors(self) -> None:
        unexpected = [e for e in self.page_errors if not any(k in e for k in KNOWN_FRONT_END_ERRORS)]
        assert unexpected == [], unexpected
        assert self.page.locator(".p-toast-message-error").count() == 0, self.page.locator(".p-toast").inner_text()
        dialogs = self.page.locator(".p-dialog:visible")
        assert dialogs.count() == 0, dialogs.first.inner_text()

    def widgets(self, node_type: str) -> dict[str, object]:
        return self.js(
            "const n = app.graph._nodes.find(n => n.type === arg);"
            "return Object.fromEntries(n.widgets.map(w => [w.name, w.value]));",
            node_type,
        )

    def sidebar(self, label: str) -> None:
        self.page.get_by_role("button", name=label).click()


@pytest.fixture
def make_stock_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Starts Loom serving the stock front end (with `--auth-token` when a token is given)."""
    if importlib.util.find_spec("comfyui_frontend_package") is None:
        pytest.fail("comfyui-frontend-package is not installed: pip install -r requirements-dev.txt")
    servers: list[ServerProcess] = []

    def make(token: str | None = None) -> ServerProcess:
        base = tmp_path / f"loom-base-{len(servers)}"
        base.mkdir()
        servers.append(ServerProcess(base, free_port(), token=token, args=["--front-end", "comfyui"]))
        servers[-1].start()
        return servers[-1]

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def stock_server(make_stock_server: Callable[..., ServerProcess]) -> ServerProcess:
    return make_stock_server()


@pytest.fixture
def stock_page(playwright_instance, stock_server: ServerProcess, tmp_path: Path) -> Iterator[StockPage]:
    context = playwright_instance.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": 1600, "height": 900},
    )
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        yield StockPage(page, "front-end")
    finally:
        context.close()


def test_stock_front_end_on_loom(stock_server: ServerProcess, stock_page: StockPage) -> None:
    ui = stock_page
    ui.open(stock_server.url)

    # A new user is greeted by the template browser, which lists Loom's own examples with titles.
    templates = ui.page.locator(".p-dialog:visible")
    templates.wait_for(state="visible")
    expect(templates).to_contain_text("Text to image", timeout=60_000)  # the list fills in after the dialog opens
    ui.shot("templates")
    ui.page.keyboard.press("Escape")
    templates.wait_for(state="hidden")

    # The node library lists Loom's nodes (the definitions the front end built from /object_info).
    defs = ui.js("return Object.keys(window.LiteGraph.registered_node_types);")
    assert {"CheckpointLoaderSimple", "KSampler", "UNETLoader", "StyleModelLoader"} <= set(defs)
    ui.sidebar("Node Library (n)")
    ui.page.get_by_placeholder("Search").first.fill("KSampler")
    ui.page.get_by_text("KSampler", exact=True).first.wait_for(state="visible")
    ui.shot("node-library")
    ui.sidebar("Node Library (n)")

    # The default workflow on the demo checkpoint at 64 px and 2 steps runs, and its image shows.
    ui.js("await app.extensionManager.command.execute('Comfy.LoadDefaultWorkflow');")
    ui.js(
        "const set = (type, name, value) => {"
        "  const n = app.graph._nodes.find(n => n.type === type);"
        "  const w = n.widgets.find(w => w.name === name); w.value = value; w.callback?.(value); };"
        "set('CheckpointLoaderSimple', 'ckpt_name', arg);"
        "set('EmptyLatentImage', 'width', 64); set('EmptyLatentImage', 'height', 64);"
        "set('KSampler', 'steps', 2); set('KSampler', 'control_after_generate', 'fixed');"
        "app.graph.setDirtyCanvas(true, true);",
        DEMO_CHECKPOINT,
    )
    ui.page.get_by_role("button", name="Run", exact=True).click()
    ui.page.wait_for_function(
        "() => (window.app.graph._nodes.find(n => n.type === 'SaveImage').imgs ?? []).length > 0", timeout=180_000
    )
    src = ui.js("return app.graph._nodes.find(n => n.type === 'SaveImage').imgs[0].src;")
    assert "/view?" in src and "filename=Loom_" in src
    assert list((stock_server.base / "output").glob("Loom_*.png"))
    ui.shot("ran")
    ui.assert_no_errors()

    # Save the workflow under a name; it is a file in the user folder.
    ui.page.keyboard.press("Control+s")
    name_input = ui.page.locator(".p-dialog:visible input")
    name_input.fill(WORKFLOW_NAME)
    name_input.press("Enter")
    saved = stock_server.base / "user" / "default" / "workflows" / f"{WORKFLOW_NAME}.json"
    ui.page.wait_for_function(
        "(path) => window.app.extensionManager.workflow.activeWorkflow?.path === path",
        arg=f"workflows/{WORKFLOW_NAME}.json",
    )
    ui.page.wait_for_function("() => !window.app.extensionManager.workflow.activeWorkflow.isModified")
    assert saved.is_file(), list(saved.parent.glob("*"))
    steps = next(n["widgets_values"] for n in json.loads(saved.read_text())["nodes"] if n["type"] == "KSampler")[2]
    assert steps == 2

    # A setting changed through the front end persists on the server across a reload.
    ui.js("await app.extensionManager.setting.set('Comfy.Sidebar.Location', 'right');")

    ui.page.reload()
    ui.wait_ready()
    assert ui.js("return app.extensionManager.setting.get('Comfy.Sidebar.Location');") == "right"
    settings = json.loads((stock_server.base / "user" / "default" / "comfy.settings.json").read_text())
    assert settings["Comfy.Sidebar.Location"] == "right"

    # Reopen the saved workflow from the workflows sidebar.
    ui.js("await app.extensionManager.command.execute('Comfy.NewBlankWorkflow');")
    ui.sidebar("Workflows (w)")
    ui.page.locator(".side-bar-panel").get_by_text(f"{WORKFLOW_NAME}.json").first.click()
    ui.page.wait_for_function(
        "(name) => window.app.extensionManager.workflow.activeWorkflow?.filename === name", arg=WORKFLOW_NAME
    )
    assert ui.widgets("KSampler")["steps"] == 2
    assert ui.widgets("CheckpointLoaderSimple")["ckpt_name"] == DEMO_CHECKPOINT
    ui.shot("reopened")
    ui.sidebar("Workflows (w)")

    # The model library lists the demo checkpoint.
    ui.sidebar("Model Library (m)")
    panel = ui.page.locator(".side-bar-panel")
    panel.get_by_text("checkpoints", exact=True).first.click()
    panel.get_by_text(DEMO_CHECKPOINT.removesuffix(".safetensors")).first.wait_for(state="visible")
    ui.shot("model-library")
    ui.sidebar("Model Library (m)")

    # The logs panel shows the server's log lines.
    ui.page.get_by_role("button", name="Toggle Bottom Panel").click()
    ui.page.get_by_role("tab", name="Logs").wait_for(state="visible")
    ui.page.locator(".xterm-rows").get_by_text("loom.serve").first.wait_for(state="visible")
    ui.shot("logs")
    ui.assert_no_errors()


def test_stock_front_end_with_a_token(make_stock_server: Callable[..., ServerProcess], stock_page: StockPage) -> None:
    """Opened once at /?token=...: the cookie that answer set carries its API calls, settings writes and socket."""
    server = make_stock_server(token=TOKEN)
    ui = stock_page
    ui.page.goto(f"{server.url}/?token={TOKEN}")
    ui.wait_ready()
    assert "KSampler" in ui.js("return Object.keys(window.LiteGraph.registered_node_types);")
    ui.js("await app.extensionManager.setting.set('Comfy.Sidebar.Location', 'right');")
    settings = json.loads((server.base / "user" / "default" / "comfy.settings.json").read_text())
    assert settings["Comfy.Sidebar.Location"] == "right"
    ui.page.wait_for_function("() => window.app.api?.serverFeatureFlags?.max_upload_size > 0")  # the socket's answer
