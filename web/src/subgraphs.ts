// Subgraphs: litegraph creates a subgraph's node by the definition's id, so each definition (made by "Convert to
// Subgraph" or read from a file's `definitions.subgraphs`) is registered as a node type. A breadcrumb over the
// canvas shows which graph is open and leads back out.

import { type LGraph, type LGraphCanvas, type LGraphNode, LiteGraph, type Subgraph, SubgraphNode } from "@comfyorg/litegraph";
import { OPEN_SUBGRAPH_GLYPH } from "./litegraph_setup";
import { addRunTimeBadge } from "./timings";
import { el } from "./ui";

const MIN_WIDTH = 220;

export function isSubgraphNode(node: LGraphNode): node is SubgraphNode {
  return node instanceof SubgraphNode;
}

function registerSubgraphType(root: LGraph, subgraph: Subgraph): void {
  class LoomSubgraphNode extends SubgraphNode {
    constructor() {
      super(root, subgraph, { id: -1, type: subgraph.id, pos: [0, 0], size: [180, 60], flags: {}, order: 0, mode: 0 } as never);
      for (const button of this.title_buttons ?? []) if (button.name === "enter_subgraph") button.text = OPEN_SUBGRAPH_GLYPH;
      addRunTimeBadge(this);
      // Widgets promoted from inside keep their values in the file (litegraph leaves them out by default).
      this.serialize_widgets = true;
    }

    /** Wide enough for its title beside the open button. */
    computeSize(out?: [number, number]): [number, number] {
      const size = super.computeSize(out) as [number, number];
      size[0] = Math.max(size[0], MIN_WIDTH);
      return size;
    }
  }
  // Named after the definition: litegraph would otherwise title new instances after the (minified) class name.
  LoomSubgraphNode.title = subgraph.name;
  LiteGraph.registerNodeType(subgraph.id, LoomSubgraphNode);
  // Not offered in menus or the palette: a subgraph node is made by converting a selection or copied.
  (LoomSubgraphNode as unknown as { skip_list: boolean }).skip_list = true;
  LoomSubgraphNode.category = "subgraphs";
}

/** Registers the definitions `root` has now, and each one created from now on. */
export function trackSubgraphTypes(root: LGraph): void {
  root.events.addEventListener("subgraph-created", (e) => registerSubgraphType(root, e.detail.subgraph));
  registerExistingSubgraphTypes(root);
}

/** After the node types were registered afresh (a schema refresh clears them). */
export function registerExistingSubgraphTypes(root: LGraph): void {
  for (const subgraph of root.subgraphs.values()) registerSubgraphType(root, subgraph);
}

/** "Workflow › Subgraph": shown while a subgraph is open; each part opens its graph. */
export class Breadcrumb {
  readonly element = el("nav", { class: "loom-breadcrumb", "aria-label": "Open graph" });

  constructor(
    private readonly root: LGraph,
    private readonly canvas: LGraphCanvas,
  ) {
    this.element.hidden = true;
    canvas.canvas.addEventListener("litegraph:set-graph", () => this.update());
    canvas.canvas.addEventListener("subgraph-opened", () => this.update());
  }

  /** Back to the workflow itself (from any depth). */
  leave(): void {
    if (this.canvas.graph !== this.root) this.canvas.setGraph(this.root);
    this.update();
  }

  update(): void {
    const current = this.canvas.graph;
    if (!current || current === this.root) {
      this.element.hidden = true;
      return;
    }
    const home = el("button", { class: "crumb root", text: "Workflow", title: "Back to the workflow (leave the subgraph)" });
    home.onclick = () => this.leave();
    const here = el("span", { class: "crumb current", text: (current as Subgraph).name ?? "Subgraph" });
    this.element.replaceChildren(home, el("span", { class: "sep", text: "›" }), here);
    this.element.hidden = false;
  }
}
