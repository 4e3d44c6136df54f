// Widgets edited in place by HTML elements laid over the canvas: multiline text as a textarea (no modal dialog),
// Markdown notes rendered as Markdown (double-click to edit the source). Each frame places the elements of the
// visible nodes over their widget boxes and hides the rest; litegraph draws only the box underneath.

import type { LGraphCanvas, LGraphNode } from "@comfyorg/litegraph";
import type { IBaseWidget } from "@comfyorg/litegraph/dist/types/widgets";
import { renderMarkdown } from "./markdown";
import { el } from "./ui";

export type DomKind = "text" | "markdown";

export const MULTILINE_HEIGHT = 72;
const MARGIN = 15;
const BOTTOM_GAP = 8;

const KINDS = new WeakMap<IBaseWidget, DomKind>();

/** Makes a text widget an in-place editor of `kind`, with a box drawn on the canvas underneath. */
export function makeDomWidget(widget: IBaseWidget, kind: DomKind): void {
  KINDS.set(widget, kind);
  widget.computeSize = (width?: number) => [width ?? 200, MULTILINE_HEIGHT];
  widget.draw = (ctx, node, width, y) => {
    ctx.save();
    ctx.fillStyle = "#222";
    ctx.beginPath();
    ctx.roundRect(MARGIN, y, width - MARGIN * 2, boxHeight(node, widget, y), 6);
    ctx.fill();
    ctx.restore();
  };
}

/** The last widget grows with its node; others keep the standard height. */
function boxHeight(node: LGraphNode, widget: IBaseWidget, y: number): number {
  const last = node.widgets?.at(-1) === widget;
  return last ? Math.max(MULTILINE_HEIGHT - 4, node.size[1] - y - BOTTOM_GAP) : MULTILINE_HEIGHT - 4;
}

interface Entry {
  node: LGraphNode;
  element: HTMLElement;
  editor: HTMLTextAreaElement;
  view: HTMLDivElement | null;
  transform: string;
}

export class DomWidgets {
  readonly layer = el("div", { class: "loom-dom-widgets" });
  readonly #entries = new Map<IBaseWidget, Entry>();

  constructor(private readonly canvas: LGraphCanvas) {
    const previous = canvas.onDrawForeground;
    canvas.onDrawForeground = (ctx, area) => {
      previous?.call(canvas, ctx, area);
      this.update();
    };
  }

  /** Places the elements of visible nodes' widgets; hides the others and drops those of removed nodes. */
  update(): void {
    const { canvas } = this;
    const seen = new Set<IBaseWidget>();
    if (!canvas.low_quality) {
      for (const node of canvas.visible_nodes) {
        if (node.collapsed) continue;
        for (const widget of node.widgets ?? []) {
          const kind = KINDS.get(widget);
          if (!kind || widget.hidden) continue;
          seen.add(widget);
          this.#place(this.#entry(node, widget, kind), node, widget);
        }
      }
    }
    for (const [widget, entry] of this.#entries) {
      if (seen.has(widget)) continue;
      if (entry.node.graph?.getNodeById(entry.node.id) !== entry.node) {
        entry.element.remove();
        this.#entries.delete(widget);
      } else entry.element.hidden = true;
    }
  }

  #entry(node: LGraphNode, widget: IBaseWidget, kind: DomKind): Entry {
    const existing = this.#entries.get(widget);
    if (existing) return existing;
    const editor = el("textarea", { class: "loom-textarea", spellcheck: "false", "aria-label": widget.name });
    editor.value = String(widget.value ?? "");
    editor.addEventListener("input", () => {
      widget.value = editor.value;
      widget.callback?.(editor.value);
      node.setDirtyCanvas(true, false);
    });
    let view: HTMLDivElement | null = null;
    let element: HTMLElement = editor;
    if (kind === "markdown") {
      view = el("div", { class: "loom-markdown" });
      element = el("div", { class: "loom-markdown-note" }, view, editor);
      editor.hidden = true;
      view.addEventListener("dblclick", () => {
        view!.hidden = true;
        editor.hidden = false;
        editor.focus();
      });
      editor.addEventListener("blur", () => {
        editor.hidden = true;
        view!.hidden = false;
      });
    }
    element.dataset.nodeId = String(node.id);
    element.dataset.widget = widget.name;
    this.layer.append(element);
    const entry: Entry = { node, element, editor, view, transform: "" };
    this.#entries.set(widget, entry);
    return entry;
  }

  #place(entry: Entry, node: LGraphNode, widget: IBaseWidget): void {
    const { ds } = this.canvas;
    const [x, y] = ds.convertOffsetToCanvas([node.pos[0] + MARGIN, node.pos[1] + widget.y]);
    const width = node.size[0] - MARGIN * 2;
    const height = boxHeight(node, widget, widget.y);
    const transform = `translate(${x}px, ${y}px) scale(${ds.scale})`;
    const size = `${width}x${height}`;
    if (entry.transform !== transform + size) {
      entry.element.style.transform = transform;
      entry.element.style.width = `${width}px`;
      entry.element.style.height = `${height}px`;
      entry.transform = transform + size;
    }
    entry.element.hidden = false;
    const value = String(widget.value ?? "");
    if (document.activeElement !== entry.editor && entry.editor.value !== value) entry.editor.value = value;
    if (entry.view && entry.view.dataset.source !== value) {
      entry.view.innerHTML = renderMarkdown(value);
      entry.view.dataset.source = value;
    }
  }
}
