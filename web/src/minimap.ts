// The minimap: the open graph's nodes as small boxes in a corner of the canvas, with the part in view outlined;
// a click or drag on it centres the view there. Redrawn after canvas frames, at most a few times a second.

import type { LGraphCanvas } from "@comfyorg/litegraph";
import { el } from "./ui";

const WIDTH = 200;
const HEIGHT = 130;
const PAD = 6;
const REDRAW_MS = 150;

interface Mapping {
  x0: number;
  y0: number;
  scale: number;
}

export class Minimap {
  readonly element = el("canvas", { class: "loom-minimap", width: String(WIDTH), height: String(HEIGHT), title: "Minimap: click to move the view" });
  #mapping: Mapping | null = null;
  #last = 0;
  #pending = 0;

  constructor(private readonly canvas: LGraphCanvas) {
    const previous = canvas.onDrawForeground;
    canvas.onDrawForeground = (ctx, area) => {
      previous?.call(canvas, ctx, area);
      this.#schedule();
    };
    let dragging = false;
    this.element.addEventListener("pointerdown", (e) => {
      dragging = true;
      this.element.setPointerCapture(e.pointerId);
      this.#centreOn(e);
    });
    this.element.addEventListener("pointermove", (e) => dragging && this.#centreOn(e));
    this.element.addEventListener("pointerup", () => (dragging = false));
  }

  #schedule(): void {
    if (this.#pending) return;
    const wait = Math.max(0, REDRAW_MS - (performance.now() - this.#last));
    this.#pending = window.setTimeout(() => {
      this.#pending = 0;
      this.#last = performance.now();
      this.draw();
    }, wait);
  }

  draw(): void {
    const ctx = this.element.getContext("2d");
    const nodes = this.canvas.graph?._nodes ?? [];
    if (!ctx) return;
    ctx.clearRect(0, 0, WIDTH, HEIGHT);
    const [vx, vy, vw, vh] = this.canvas.visible_area;
    const xs = [...nodes.map((n) => n.pos[0]), vx];
    const ys = [...nodes.map((n) => n.pos[1] - 30), vy];
    const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]), vx + vw);
    const y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]), vy + vh);
    const x0 = Math.min(...xs);
    const y0 = Math.min(...ys);
    const scale = Math.min((WIDTH - PAD * 2) / (x1 - x0 || 1), (HEIGHT - PAD * 2) / (y1 - y0 || 1));
    this.#mapping = { x0, y0, scale };
    const at = (x: number, y: number): [number, number] => [PAD + (x - x0) * scale, PAD + (y - y0) * scale];
    for (const node of nodes) {
      ctx.fillStyle = node.color ?? "#6b7280";
      ctx.fillRect(...at(node.pos[0], node.pos[1] - 30), Math.max(1, node.size[0] * scale), Math.max(1, (node.size[1] + 30) * scale));
    }
    ctx.strokeStyle = "#5a9cf8";
    ctx.lineWidth = 1.5;
    ctx.strokeRect(...at(vx, vy), vw * scale, vh * scale);
  }

  #centreOn(e: PointerEvent): void {
    const m = this.#mapping;
    if (!m) return;
    const rect = this.element.getBoundingClientRect();
    const gx = m.x0 + (e.clientX - rect.left - PAD) / m.scale;
    const gy = m.y0 + (e.clientY - rect.top - PAD) / m.scale;
    const ds = this.canvas.ds;
    const [, , vw, vh] = this.canvas.visible_area;
    ds.offset = [-(gx - vw / 2), -(gy - vh / 2)];
    this.canvas.setDirty(true, true);
  }
}
