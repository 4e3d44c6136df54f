// Node ids as the server names them: a node inside a subgraph is "<subgraph node id>:<inner id>" (nested:
// "12:5:3"), which is how the canvas sends them (convert.ts) and how events, errors and timings come back.

import { type LGraph, type LGraphNode, SubgraphNode } from "@comfyorg/litegraph";

/**
 * The canvas nodes an event's node id names: "12" is node 12, "12:5" node 5 inside subgraph node 12 (and node
 * 12 itself, first). Ids the canvas does not show (a node expanded on the server) end the path.
 */
export function nodePath(graph: LGraph, id: string): LGraphNode[] {
  const path: LGraphNode[] = [];
  let scope: LGraph | null = graph;
  for (const part of id.split(":")) {
    const node: LGraphNode | null = scope?.getNodeById(part) ?? scope?.getNodeById(Number(part)) ?? null;
    if (!node) break;
    path.push(node);
    scope = node instanceof SubgraphNode ? node.subgraph : null;
  }
  return path;
}

