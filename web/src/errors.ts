// Validation errors (the 400 answer to POST /prompt): the offending nodes are outlined (inside a subgraph: the
// node there and the subgraph node holding it), their inputs marked, and a panel lists every error with the
// server's message; clicking one shows its node (opening the subgraph it is in).

import type { LGraph, LGraphCanvas, LGraphNode, Subgraph } from "@comfyorg/litegraph";
import type { NodeErrorDetail, NodeErrors } from "./api";
import type { LoomNode } from "./nodes";
import { isSubgraphNode } from "./subgraphs";
import { nodePath } from "./node_path";
import { el } from "./ui";

/** "node 3 (KSampler) (KSampler): " and the like: the panel and the node already say which node. */
const NODE_PREFIX = /^node \S+(?: \([^)]*\))*: /;

/**
 * One sentence for one problem, without the node (shown beside it) or the input (returned apart): the server's
 * `details` when they name the input, else its message without the node prefix.
 */
export function sentence(err: NodeErrorDetail): string {
  const input = err.extra_info?.input_name;
  let text = err.message.replace(NODE_PREFIX, "");
  if (input && err.details?.startsWith(`${input}: `)) text = err.details.slice(input.length + 2);
  else if (input) text = text.replace(`input '${input}' `, "");
  else if (err.details && !text.includes(err.details)) text = `${text}: ${err.details}`;
  text = text.trim();
  return text.endsWith(".") ? text : `${text}.`;
}

export class ValidationPanel {
  readonly element = el("div", { class: "loom-validation", role: "alert" });

  constructor(
    private readonly graph: LGraph,
    private readonly canvas: LGraphCanvas,
  ) {
    this.element.hidden = true;
  }

  /**
   * Lists the errors and outlines their nodes. A node inside a subgraph ("12:5") is outlined there and so is
   * the subgraph node holding it, on the graph outside; its entry names the path ("Prompts › KSampler #12:5").
   */
  show(message: string, nodeErrors: NodeErrors, details?: string): void {
    const items: HTMLElement[] = [];
    for (const [id, entry] of Object.entries(nodeErrors)) {
      const path = nodePath(this.graph, id);
      const node = (path.length === id.split(":").length ? path[path.length - 1] : null) as LoomNode | null;
      for (const outer of path) outer.has_errors = true;
      if (node?.loom) {
        node.loom.errors = entry.errors.map((err) => ({ input: err.extra_info?.input_name, message: sentence(err) }));
      }
      const where = node ? path.map((n) => n.title).join(" › ") : entry.class_type ?? id;
      for (const err of entry.errors) {
        const input = err.extra_info?.input_name;
        const li = el("li", { "data-node-id": id, text: `${where} #${id}: ${input ? `${input}: ` : ""}${sentence(err)}` });
        li.onclick = () => this.#locate(path);
        items.push(li);
      }
    }
    const close = el("button", { text: "×", title: "Dismiss" });
    close.onclick = () => (this.element.hidden = true);
    this.element.replaceChildren(
      close,
      el("strong", { text: message }),
      ...(details && !items.length ? [el("p", { text: details })] : []),
      el("ul", {}, ...items),
    );
    this.element.hidden = false;
    this.canvas.setDirty(true, true);
  }

  /** Shows the last node of `path`: the subgraph holding it is opened first. */
  #locate(path: LGraphNode[]): void {
    const node = path[path.length - 1];
    if (!node) return;
    const holder = path.length > 1 ? path[path.length - 2] : null;
    const graph = holder && isSubgraphNode(holder) ? holder.subgraph : this.graph;
    if (this.canvas.graph !== graph) {
      if (graph === this.graph) this.canvas.setGraph(this.graph);
      else this.canvas.openSubgraph(graph as Subgraph);
    }
    this.canvas.centerOnNode(node);
  }

  /** Forgets the last errors (a new queue attempt, another workflow), in the workflow and every subgraph. */
  clear(): void {
    this.element.hidden = true;
    for (const graph of [this.graph, ...this.graph.subgraphs.values()]) {
      for (const node of graph._nodes) {
        node.has_errors = false;
        const loom = (node as LoomNode).loom;
        if (loom?.errors.length) loom.errors = [];
      }
    }
    document.querySelector(".loom-error-dialog")?.remove();
  }
}
