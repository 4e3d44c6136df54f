// Graph -> API format (DESIGN.md section 6), done in the browser for queueing: widget values by input name,
// links resolved through reroutes and bypassed nodes, muted nodes (and what then lacks a required input)
// dropped, front-end-only nodes ignored, subgraphs flattened into their nodes (a subgraph input that feeds a
// widget and is not linked outside sends the value of the widget promoted onto the subgraph node).

import type { LGraph, LGraphNode, LLink } from "@comfyorg/litegraph";
import type { ApiPrompt } from "./api";
import type { NodeDef } from "./schema";
import { isControlWidget, PrimitiveNode } from "./nodes";
import { isSubgraphNode } from "./subgraphs";

const MUTED = 2;
const BYPASSED = 4;
/** litegraph's id for the input side of a subgraph (links from it come from the subgraph node's inputs). */
const SUBGRAPH_INPUT_ID = -10;

type Source = [string, number] | { literal: unknown };
/** The link leads to a muted node: the input is dropped along with its node. */
const FROM_MUTED = "muted";

/**
 * A graph being converted: the workflow, or a subgraph seen through one of its nodes. Nodes inside a subgraph
 * are sent as "<subgraph node id>:<inner id>" (nested: "12:5:3"), so events name the node on the canvas.
 */
interface Scope {
  graph: LGraph;
  prefix: string;
  parent: { scope: Scope; node: LGraphNode } | null;
}

function inner(scope: Scope, node: LGraphNode): Scope {
  return { graph: (node as unknown as { subgraph: LGraph }).subgraph, prefix: `${scope.prefix}${node.id}:`, parent: { scope, node } };
}

/** Notes, reroutes and the like: drawn on the canvas, never sent. Unknown types are sent (the server names them). */
function isFrontendOnly(node: LGraphNode): boolean {
  return node.isVirtualNode === true;
}

/** Follows a link back to the node output that really feeds it, or null when nothing does. */
function resolveSource(scope: Scope, link: LLink | undefined, seen = new Set<LLink>()): Source | typeof FROM_MUTED | null {
  if (!link || seen.has(link)) return null;
  seen.add(link);
  const { graph } = scope;
  if (link.origin_id === SUBGRAPH_INPUT_ID) {
    const outer = scope.parent;
    const slot = outer?.node.inputs[link.origin_slot];
    if (!outer || !slot) return null;
    if (slot.link != null) return resolveSource(outer.scope, outer.scope.graph.getLink(slot.link), seen);
    // Not linked outside: the input feeds a widget, promoted onto the subgraph node, which holds the value.
    const promoted = outer.node.widgets?.find((w) => w.name === slot.name);
    return promoted ? { literal: promoted.value } : null;
  }
  const origin = graph.getNodeById(link.origin_id);
  if (!origin) return null;
  if (origin instanceof PrimitiveNode) return { literal: origin.value };
  if (origin.type === "Reroute") {
    return resolveSource(scope, graph.getLink(origin.inputs[0]?.link ?? null), seen);
  }
  if (origin.mode === MUTED) return FROM_MUTED;
  if (origin.mode === BYPASSED) {
    const outType = String(origin.outputs[link.origin_slot]?.type ?? link.type);
    const candidates = origin.inputs
      .map((input, index) => ({ input, index }))
      .filter(({ input }) => input.link != null && String(input.type) === outType);
    candidates.sort((a, b) => Number(b.index === link.origin_slot) - Number(a.index === link.origin_slot));
    for (const { input } of candidates) {
      const source = resolveSource(scope, graph.getLink(input.link), seen);
      if (source) return source;
    }
    return candidates.length ? FROM_MUTED : null;
  }
  if (isSubgraphNode(origin)) {
    const linkId = origin.subgraph.outputNode.slots[link.origin_slot]?.linkIds[0];
    return resolveSource(inner(scope, origin), origin.subgraph.getLink(linkId ?? null), seen);
  }
  if (isFrontendOnly(origin)) return null;
  return [`${scope.prefix}${origin.id}`, link.origin_slot];
}

/** A list literal is wrapped so the server never mistakes it for a link. */
function literal(value: unknown): unknown {
  return Array.isArray(value) ? { __value__: value } : value;
}

function collect(scope: Scope, defs: Map<string, NodeDef>, prompt: ApiPrompt, fedByMuted: Set<string>): void {
  for (const node of scope.graph._nodes) {
    if (node.mode === MUTED || node.mode === BYPASSED) continue;
    if (isSubgraphNode(node)) {
      collect(inner(scope, node), defs, prompt, fedByMuted);
      continue;
    }
    if (isFrontendOnly(node)) continue;
    const id = `${scope.prefix}${node.id}`;
    const def = defs.get(node.type);
    const inputs: Record<string, unknown> = {};
    const linked = new Set<string>();
    for (const slot of node.inputs) {
      if (slot.link == null) continue;
      const name = slot.widget?.name ?? slot.name;
      linked.add(name);
      const source = resolveSource(scope, scope.graph.getLink(slot.link));
      if (source === FROM_MUTED) fedByMuted.add(id);
      else if (source && "literal" in source) inputs[name] = literal(source.literal);
      else if (source) inputs[name] = source;
    }
    for (const widget of node.widgets ?? []) {
      if (isControlWidget(widget) || linked.has(widget.name)) continue;
      if (def?.inputs.some((i) => i.name === widget.name)) inputs[widget.name] = literal(widget.value);
    }
    prompt[id] = { class_type: node.type, inputs, _meta: { title: node.title } };
  }
}

export function graphToPrompt(graph: LGraph, defs: Map<string, NodeDef>): ApiPrompt {
  const prompt: ApiPrompt = {};
  const fedByMuted = new Set<string>();
  collect({ graph, prefix: "", parent: null }, defs, prompt, fedByMuted);
  dropOrphans(prompt, fedByMuted);
  return prompt;
}

/** Drops the nodes fed by a muted node, then whatever links to a dropped node, until nothing changes. */
function dropOrphans(prompt: ApiPrompt, fedByMuted: Set<string>): void {
  for (const id of fedByMuted) delete prompt[id];
  let changed = true;
  while (changed) {
    changed = false;
    for (const [id, node] of Object.entries(prompt)) {
      if (Object.values(node.inputs).some((v) => Array.isArray(v) && !(String(v[0]) in prompt))) {
        delete prompt[id];
        changed = true;
      }
    }
  }
}
