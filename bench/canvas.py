"""Canvas figures, measured in Chromium with performance.now(): first paint, loading a 500-node workflow, redraw.

Starts a real Loom server on a free port (temporary base directory), opens the canvas headless and prints:
  - first contentful paint and the time until the canvas is ready (schema fetched, default workflow drawn);
  - the time to load a 500-node canvas workflow (configure + first full draw);
  - the mean redraw time of one full frame with all 500 nodes in view, and at 1:1 zoom.
Run: .venv/bin/python bench/canvas.py
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ensure_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

NODES = 500
FRAMES = 40

# Builds NODES nodes as txt2img chains laid out in a grid and serialises them: the canvas file a user would open.
BUILD_WORKFLOW = """(count) => {
  const { app, LiteGraph } = window.loom;
  const { LGraph } = LiteGraph;
  const graph = new LGraph();
  const chain = ["CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage"];
  for (let i = 0; graph._nodes.length < count; i++) {
    const made = {};
    for (const [j, type] of chain.entries()) {
      if (graph._nodes.length >= count) break;
      const node = LiteGraph.createNode(type);
      node.pos = [(i % 4) * 2100 + j * 340, Math.floor(i / 4) * 340];
      graph.add(node);
      made[type] = node;
    }
    const link = (a, out, b, inp) => a && b && a.connect(a.findOutputSlot(out), b, b.findInputSlot(inp));
    link(made.CheckpointLoaderSimple, "MODEL", made.KSampler, "model");
    link(made.CheckpointLoaderSimple, "CLIP", made.CLIPTextEncode, "clip");
    link(made.CLIPTextEncode, "CONDITIONING", made.KSampler, "positive");
    link(made.CLIPTextEncode, "CONDITIONING", made.KSampler, "negative");
    link(made.EmptyLatentImage, "LATENT", made.KSampler, "latent_image");
    link(made.KSampler, "LATENT", made.VAEDecode, "samples");
    link(made.CheckpointLoaderSimple, "VAE", made.VAEDecode, "vae");
    link(made.VAEDecode, "IMAGE", made.SaveImage, "images");
  }
  return JSON.stringify(graph.serialize());
}"""

LOAD = """(text) => {
  const app = window.loom.app;
  const t0 = performance.now();
  app.loadWorkflow(JSON.parse(text));
  app.canvas.draw(true, true);
  return performance.now() - t0;
}"""

REDRAW = """([frames, fit]) => {
  const app = window.loom.app;
  if (fit) app.fitView({ readable: false }); else { app.canvas.ds.scale = 1; app.canvas.ds.offset = [0, 0]; }
  app.canvas.draw(true, true);
  const t0 = performance.now();
  for (let i = 0; i < frames; i++) app.canvas.draw(true, true);
  return [(performance.now() - t0) / frames, app.canvas.visible_nodes.length];
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(base: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "main.py", "--port", str(port), "--base-directory", str(base)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/object_info", timeout=2).close()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the Loom server did not start")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp) / "base")
        try:
            with sync_playwright() as p:
                context = p.chromium.launch_persistent_context(
                    str(Path(tmp) / "profile"),
                    executable_path=CHROMIUM,
                    args=CHROMIUM_ARGS,
                    headless=True,
                    viewport={"width": 1600, "height": 900},
                )
                page = context.new_page()
                page.goto(url + "/")
                page.wait_for_function("() => window.loom && window.loom.app.timings.ready")
                fcp = page.evaluate("() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN")
                ready = page.evaluate("() => window.loom.app.timings.ready")
                workflow = page.evaluate(BUILD_WORKFLOW, NODES)
                load_ms = min(page.evaluate(LOAD, workflow) for _ in range(3))
                nodes = page.evaluate("() => window.loom.app.graph._nodes.length")
                fit_ms, fit_visible = page.evaluate(REDRAW, [FRAMES, True])
                one_ms, one_visible = page.evaluate(REDRAW, [FRAMES, False])
                context.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"first contentful paint: {fcp:.0f} ms; canvas ready (schema + default workflow): {ready:.0f} ms")
    print(f"load a {nodes}-node workflow (configure + first draw): {load_ms:.0f} ms")
    print(f"redraw, all {fit_visible} nodes in view: {fit_ms:.1f} ms/frame")
    print(f"redraw at 1:1 zoom ({one_visible} nodes in view): {one_ms:.1f} ms/frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
