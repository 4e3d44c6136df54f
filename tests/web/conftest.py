"""Fixtures for the canvas tests: a real Loom server in a subprocess and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.ensure_browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_schema(url: str, proc: subprocess.Popen[bytes], timeout: float = 60, token: str | None = None) -> dict:
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Loom server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(
                urllib.request.Request(f"{url}/object_info", headers=headers), timeout=2
            ) as res:
                return json.load(res)
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("the Loom server did not answer /object_info")


class Server:
    """A running Loom server: its URL, base directory and schema."""

    def __init__(self, url: str, base: Path, schema: dict) -> None:
        self.url = url
        self.base = base
        self.schema = schema


class ServerProcess:
    """Starts and stops `python main.py` on a fixed port and base directory (restartable)."""

    def __init__(self, base: Path, port: int, token: str | None = None, args: Sequence[str] = ()) -> None:
        """`token`: serve with --auth-token; `args`: more `main.py` flags (`--front-end comfyui`...)."""
        self.base = base
        self.port = port
        self.token = token
        self.args = tuple(args)
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> dict:
        if not (ROOT / "server" / "app.py").exists():
            pytest.skip("the HTTP server (server/) is not on this branch yet")
        if "--front-end" not in self.args and not (ROOT / "web" / "dist" / "index.html").exists():
            pytest.fail("web/dist is not built: run `make web` (npm ci + npm run build in web/)")
        with (self.base / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "main.py",
                    "--port",
                    str(self.port),
                    "--base-directory",
                    str(self.base),
                    *(["--auth-token", self.token] if self.token else []),
                    *self.args,
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
            )
        return wait_for_schema(self.url, self.proc, token=self.token)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


TEST_PACK_INIT = """
class WebTestEcho:
    CATEGORY = "testing"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1})}}

    def run(self, value):
        return (value,)


NODE_CLASS_MAPPINGS = {"WebTestEcho": WebTestEcho}
WEB_DIRECTORY = "./web"
"""

TEST_PACK_SCRIPT = """
import { app } from "../../scripts/app.js";

window.loom.registerExtension({
  name: "web_test_pack.native",
  nodeCreated(node) {
    node.properties.webTestPackSeen = true;
  },
});
app.registerExtension({
  name: "web_test_pack.compat",
  setup() {
    window.webTestPackSetup = true;
  },
});
"""


def write_test_pack(base: Path) -> None:
    """A node pack with a front-end extension, in the server's custom_nodes/."""
    pack = base / "custom_nodes" / "web_test_pack"
    (pack / "web").mkdir(parents=True)
    (pack / "__init__.py").write_text(TEST_PACK_INIT)
    (pack / "web" / "extension.js").write_text(TEST_PACK_SCRIPT)


@pytest.fixture(scope="session")
def loom_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("loom-base")
    write_test_pack(base)
    server = ServerProcess(base, free_port())
    try:
        schema = server.start()
        yield Server(server.url, base, schema)
    finally:
        server.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own (not yet started), for tests that stop and restart it."""
    base = tmp_path / "loom-base"
    base.mkdir()
    server = ServerProcess(base, free_port())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run tests/ensure_browser.py (apt-get install chromium)")
    with sync_playwright() as p:
        yield p


class Canvas:
    """A page showing the canvas, with the console errors it logged and a screenshot helper."""

    def __init__(self, page, name: str) -> None:
        self.page = page
        self.name = name
        self.errors: list[str] = []
        self.step = 0
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def shot(self, label: str) -> Path:
        self.step += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{self.step:02d}-{label}.png"
        self.page.screenshot(path=str(path))
        return path

    def js(self, body: str, arg: object = None) -> object:
        """Evaluates `body` (a function body seeing `app` and `arg`) in the page."""
        return self.page.evaluate(f"(arg) => {{ const app = window.loom.app; {body} }}", arg)

    def nodes(self) -> list[dict]:
        return self.js("return app.graph._nodes.map(n => ({id: n.id, type: n.type, title: n.title, mode: n.mode}));")

    def node_id(self, node_type: str) -> int:
        ids = [n["id"] for n in self.nodes() if n["type"] == node_type]
        assert ids, f"no {node_type} node on the canvas"
        return ids[0]

    def to_screen(self, graph_x: float, graph_y: float) -> tuple[float, float]:
        x, y = self.js(
            "const r = app.canvas.canvas.getBoundingClientRect();"
            "const p = app.canvas.ds.convertOffsetToCanvas(arg);"
            "return [r.left + p[0], r.top + p[1]];",
            [graph_x, graph_y],
        )
        return x, y

    def slot(self, node_id: int, name: str, output: bool) -> tuple[float, float]:
        """Screen position of a node's input or output slot, by name."""
        x, y = self.js(
            "const n = app.graph.getNodeById(arg.id);"
            "const i = arg.output ? n.findOutputSlot(arg.name) : n.findInputSlot(arg.name);"
            "if (i < 0) throw new Error('no slot ' + arg.name);"
            "return arg.output ? n.getOutputPos(i) : n.getInputPos(i);",
            {"id": node_id, "name": name, "output": output},
        )
        return self.to_screen(x, y)

    def widget(self, node_id: int, name: str, where: str = "right") -> tuple[float, float]:
        """Screen position on a widget: its right arrow ("right"), left arrow ("left") or middle."""
        x, y = self.js(
            "const n = app.graph.getNodeById(arg.id); const w = n.widgets.find(w => w.name === arg.name);"
            "const h = (w.computedHeight || 20) / 2;"
            "const x = arg.where === 'right' ? n.size[0] - 22 : arg.where === 'left' ? 22 : n.size[0] / 2;"
            "return [n.pos[0] + x, n.pos[1] + w.y + h];",
            {"id": node_id, "name": name, "where": where},
        )
        return self.to_screen(x, y)

    def widget_value(self, node_id: int, name: str) -> object:
        return self.js(
            "return app.graph.getNodeById(arg.id).widgets.find(w => w.name === arg.name).value;",
            {"id": node_id, "name": name},
        )

    def add_node(self, query: str, node_type: str, at: tuple[float, float]) -> int:
        """Double-clicks empty canvas at `at`, searches `query` in the palette and picks `node_type`."""
        before = {n["id"] for n in self.nodes()}
        self.page.mouse.dblclick(*at)
        search = self.page.locator(".loom-palette input")
        search.wait_for(state="visible")
        search.fill(query)
        self.page.locator(f'.loom-palette li[data-type="{node_type}"]').first.click()
        added = [n for n in self.nodes() if n["id"] not in before]
        assert len(added) == 1 and added[0]["type"] == node_type, added
        return added[0]["id"]

    def drag(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        mouse = self.page.mouse
        mouse.move(*start)
        mouse.down()
        mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=4)
        mouse.move(*end, steps=4)
        mouse.up()

    def connect(self, source: int, output: str, target: int, input_name: str) -> None:
        self.drag(self.slot(source, output, output=True), self.slot(target, input_name, output=False))
        linked = self.js(
            "const n = app.graph.getNodeById(arg.id); return n.inputs[n.findInputSlot(arg.name)].link != null;",
            {"id": target, "name": input_name},
        )
        assert linked, f"dragging {source}.{output} -> {target}.{input_name} made no link"

    def wait_for_images(self, node_id: int, previous: list[str] | None = None, timeout: float = 120_000) -> list[str]:
        """Waits until the node shows output images (other than `previous`) and returns their URLs."""
        self.page.wait_for_function(
            "(arg) => { const n = window.loom.app.graph.getNodeById(arg.id);"
            " const urls = n.loom.imageUrls; return urls.length > 0 && JSON.stringify(urls) !== arg.prev; }",
            arg={"id": node_id, "prev": json.dumps(previous or [])},
            timeout=timeout,
        )
        return self.js("return app.graph.getNodeById(arg).loom.imageUrls;", node_id)

    def wait_idle(self, timeout: float = 120_000) -> None:
        """Waits until no job of this page is running or pending."""
        self.page.wait_for_function(
            "() => { const a = window.loom.app; const q = a.queuePanel.state;"
            " return a.runningNode === null && q.queue_running.length === 0 && q.queue_pending.length === 0; }",
            timeout=timeout,
        )


@pytest.fixture
def open_canvas(playwright_instance, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """Opens the canvas of the server at a URL in a fresh Chromium profile (closed after the test)."""
    contexts = []

    def open_at(url: str, path: str = "/") -> Canvas:
        context = playwright_instance.chromium.launch_persistent_context(
            str(tmp_path / f"chromium-profile-{len(contexts)}"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1600, "height": 900},
            accept_downloads=True,
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        view = Canvas(page, request.node.name.removeprefix("test_"))
        page.goto(url + path)
        page.wait_for_function("() => window.loom && window.loom.app.timings.ready")
        return view

    try:
        yield open_at
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def canvas(loom_server: Server, open_canvas) -> Canvas:
    return open_canvas(loom_server.url)
