// Opens the node palette from the canvas: a double-click on empty canvas, and litegraph's search box (a link
// released on empty canvas, then "Search"), where only node types with a matching socket are offered and the
// node picked is connected to the dragged slot.

import type { LGraphNode } from "@comfyorg/litegraph";
import type { GraphState } from "./graph_state";
import { typesCompatible } from "./nodes";
import { Palette, type SlotFilter } from "./palette";
import type { NodeDef } from "./schema";

/** The slot a link was dragged from when the palette opened on its release. */
interface LinkSource {
  node: LGraphNode;
  slot: { type: unknown };
  fromOutput: boolean;
}

export class CanvasSearch {
  readonly palette: Palette;
  #linkSource: LinkSource | null = null;

  constructor(
    private readonly state: GraphState,
    defs: () => Map<string, NodeDef>,
  ) {
    this.palette = new Palette({
      defs,
      add: (type, pos, filter) => {
        const node = state.addNodeAt(type, pos);
        if (node && filter) this.#connectToLinkSource(node);
      },
      compatible: typesCompatible,
    });
    state.canvas.showSearchBox = (event: MouseEvent, options?: any) => {
      this.#linkSource = null;
      let filter: SlotFilter | null = null;
      if (options?.node_from && options.slot_from) {
        filter = { type: String(options.slot_from.type), input: true };
        this.#linkSource = { node: options.node_from, slot: options.slot_from, fromOutput: true };
      } else if (options?.node_to && (options.slot_to || options.slot_from)) {
        const slot = options.slot_to ?? options.slot_from;
        filter = { type: String(slot.type), input: false };
        this.#linkSource = { node: options.node_to, slot, fromOutput: false };
      }
      this.palette.open([event.clientX, event.clientY], event, filter);
      return this.palette.element;
    };
  }

  /** litegraph detects double-clicks from pointer timing; the native event backs it up on a busy machine. */
  bindDoubleClick(): void {
    const { canvas, canvasEl, graph } = this.state;
    canvasEl.addEventListener("dblclick", (e) => {
      const [x, y] = canvas.convertEventToCanvasOffset(e);
      if (this.palette.isOpen || graph.getNodeOnPos(x, y) || graph.getGroupOnPos(x, y)) return;
      this.palette.open([e.clientX, e.clientY], e);
    });
  }

  #connectToLinkSource(node: LGraphNode): void {
    const source = this.#linkSource;
    this.#linkSource = null;
    if (!source) return;
    const type = String(source.slot.type);
    if (source.fromOutput) {
      const out = source.node.outputs.indexOf(source.slot as never);
      const input = node.inputs.findIndex((i) => typesCompatible(type, String(i.type)));
      if (out >= 0 && input >= 0) source.node.connect(out, node, input);
    } else {
      const input = source.node.inputs.indexOf(source.slot as never);
      const out = node.outputs.findIndex((o) => typesCompatible(String(o.type), type));
      if (out >= 0 && input >= 0) node.connect(out, source.node, input);
    }
    this.state.changed();
  }
}
