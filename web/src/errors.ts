// Validation errors (the 400 answer to POST /prompt): the offending nodes are outlined, their inputs marked,
// and a panel lists every error with the server's message; clicking one centres the canvas on its node.

import type { LGraph, LGraphCanvas } from "@comfyorg/litegraph";
import type { NodeErrorDetail, NodeErrors } from "./api";
import type { LoomNode } from "./nodes";
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

  show(message: string, nodeErrors: NodeErrors, details?: string): void {
    const items: HTMLElement[] = [];
    for (const [id, entry] of Object.entries(nodeErrors)) {
      const node = this.graph.getNodeById(id) as LoomNode | null;
      const title = node?.title ?? entry.class_type ?? id;
      if (node?.loom) {
        node.has_errors = true;
        node.loom.errors = entry.errors.map((err) => ({ input: err.extra_info?.input_name, message: sentence(err) }));
      }
      for (const err of entry.errors) {
        const input = err.extra_info?.input_name;
        const li = el("li", { "data-node-id": id, text: `${title} #${id}: ${input ? `${input}: ` : ""}${sentence(err)}` });
        li.onclick = () => node && this.canvas.centerOnNode(node);
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

  /** Forgets the last errors (a new queue attempt, another workflow). */
  clear(): void {
    this.element.hidden = true;
    for (const node of this.graph._nodes) {
      const loom = (node as LoomNode).loom;
      if (loom?.errors.length) {
        loom.errors = [];
        node.has_errors = false;
      }
    }
    document.querySelector(".loom-error-dialog")?.remove();
  }
}
