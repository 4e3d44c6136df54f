// The graph being edited: the litegraph graph and canvas, undo/redo by snapshots, the edits every other part
// makes through it (add a node, group, replace the whole graph), and the hook that keeps a copy for a reload.

import { LGraph, LGraphCanvas, LGraphGroup, type LGraphNode, LiteGraph } from "@comfyorg/litegraph";
import { setUpLitegraph } from "./litegraph_setup";
import { UndoStack } from "./undo";

const READABLE_MARGIN = 1.1;

export class GraphState {
  readonly graph = new LGraph();
  readonly canvas: LGraphCanvas;
  /** Created once the first workflow is on the canvas (its snapshot is the first undo state). */
  undo: UndoStack | null = null;
  /** Writes what a reload restores (the tabs set it); called shortly after each edit, undo or redo. */
  persist: () => void = () => {};
  #saveTimer = 0;

  constructor(readonly canvasEl: HTMLCanvasElement) {
    setUpLitegraph();
    this.canvas = new LGraphCanvas(canvasEl, this.graph);
    this.canvas.show_info = false;
    this.canvas.render_canvas_border = false;
  }

  /** Starts undo history from the graph as it is now. */
  startHistory(): void {
    this.undo = new UndoStack(
      () => this.#snapshot(),
      (state) => this.#restore(state),
    );
  }

  /** Call after any edit: records an undo step and saves when the graph changed. */
  changed(): void {
    if (!this.undo?.check()) return;
    this.#edited();
  }

  /** Called after each edit that became an undo step, and after each undo or redo. */
  readonly onChange: (() => void)[] = [];

  #edited(): void {
    this.schedulePersist();
    for (const listener of this.onChange) listener();
  }

  /**
   * Runs a whole-graph replacement and makes it one undo step. Drawn before the snapshot: the first draw sizes
   * nodes to their widgets, which would otherwise differ from the snapshot and break redo past this step.
   */
  replace(action: () => void): void {
    action();
    this.canvas.draw(true, true);
    this.changed();
  }

  #snapshot(): string {
    const data = this.graph.serialize() as any;
    delete data.extra?.ds;
    return JSON.stringify(data);
  }

  #restore(state: string): void {
    const open = this.canvas.graph !== this.graph ? this.canvas.graph?.id : undefined;
    this.graph.configure(JSON.parse(state));
    // The subgraph that was open is a new object now (or gone): show its new self, else the workflow.
    if (open !== undefined) this.canvas.setGraph(this.graph.subgraphs.get(open) ?? this.graph);
    this.canvas.setDirty(true, true);
    this.#edited();
  }

  /** Calls `persist` once edits pause (a drag is many edits). */
  schedulePersist(): void {
    window.clearTimeout(this.#saveTimer);
    this.#saveTimer = window.setTimeout(() => this.persist(), 300);
  }

  /** Sizes the canvas bitmap to its host element and the device pixel ratio. */
  resize(): void {
    const host = this.canvasEl.parentElement!;
    const scale = Math.max(window.devicePixelRatio, 1);
    const { width, height } = host.getBoundingClientRect();
    this.canvasEl.style.width = `${width}px`;
    this.canvasEl.style.height = `${height}px`;
    this.canvas.resize(Math.round(width * scale), Math.round(height * scale));
    this.canvasEl.getContext("2d")?.scale(scale, scale);
    this.canvas.setDirty(true, true);
  }

  /**
   * Zooms and pans so every node is in view, never past 1:1 and, unless `readable` is false, never below the
   * scale where litegraph stops drawing text: a workflow too large for that opens at its top left.
   */
  fitView({ readable = true }: { readable?: boolean } = {}): void {
    const nodes = this.canvas.graph?._nodes ?? [];
    if (!nodes.length) return;
    // Measured from pos/size: node bounding rects are only filled in by the first draw.
    const title = LiteGraph.NODE_TITLE_HEIGHT;
    const x0 = Math.min(...nodes.map((n) => n.pos[0])) - 40;
    const y0 = Math.min(...nodes.map((n) => n.pos[1] - title)) - 40;
    const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0])) + 40;
    const y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1])) + 40;
    const ds = this.canvas.ds;
    const width = this.canvasEl.width / Math.max(window.devicePixelRatio, 1);
    const height = this.canvasEl.height / Math.max(window.devicePixelRatio, 1);
    const fit = Math.min(1, width / (x1 - x0), height / (y1 - y0));
    ds.scale = readable ? Math.max(fit, this.readableScale) : fit;
    const spareX = width / ds.scale - (x1 - x0);
    const spareY = height / ds.scale - (y1 - y0);
    ds.offset = [-x0 + Math.max(spareX, 0) / 2, -y0 + Math.max(spareY, 0) / 2];
    this.canvas.setDirty(true, true);
  }

  /** The smallest zoom at which titles, widget values and notes are drawn (a margin above litegraph's cut-off). */
  get readableScale(): number {
    return Math.min(1, this.canvas.low_quality_zoom_threshold * READABLE_MARGIN);
  }

  /** Adds a node of `type` to the open graph (the workflow or a subgraph) at a point on the screen, selected. */
  addNodeAt(type: string, screenPos: [number, number]): LGraphNode | null {
    const node = LiteGraph.createNode(type);
    if (!node) return null;
    const rect = this.canvasEl.getBoundingClientRect();
    const pos = this.canvas.convertCanvasToOffset([screenPos[0] - rect.left, screenPos[1] - rect.top]);
    node.pos = [pos[0], pos[1]];
    const graph = this.canvas.graph ?? this.graph;
    graph.beforeChange();
    graph.add(node);
    graph.afterChange();
    this.canvas.selectNode(node);
    this.changed();
    return node;
  }

  forSelected(action: (node: LGraphNode) => void): void {
    for (const node of Object.values(this.canvas.selected_nodes)) action(node);
    this.changed();
  }

  groupSelected(): LGraphGroup | null {
    const items = [...this.canvas.selectedItems];
    if (!items.length) return null;
    const group = new LGraphGroup("Group");
    group.resizeTo(items, 10);
    (this.canvas.graph ?? this.graph).add(group);
    this.canvas.setDirty(true, true);
    this.changed();
    return group;
  }
}
