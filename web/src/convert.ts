// Graph -> API format (DESIGN.md section 6), done in the browser for queueing: widget values by input name,
// links resolved through reroutes and bypassed nodes, muted nodes (and what then lacks a required input)
// dropped, front-end-only nodes ignored.

import type { LGraph, LGraphNode, LLink } from "@comfyorg/litegraph";
import type { ApiPrompt } from "./api";
import type { NodeDef } from "./schema";
import { isControlWidget, PrimitiveNode } from "./nodes";

const MUTED = 2;
const BYPASSED = 4;

type Source = [string, number] | { literal: unknown };
/** The link leads to a muted node: the input is dropped along with its node. */
const FROM_MUTED = "muted";

/** Notes, reroutes and the like: drawn on the canvas, never sent. Unknown types are sent (the server names them). */
function isFrontendOnly(node: LGraphNode): boolean {
  return node.isVirtualNode === true;
}

/** Follows a link back to the node output that really feeds it, or null when nothing does. */
function resolveSource(graph: LGraph, link: LLink | undefined, defs: Map<string, NodeDef>, seen = new Set<LLink>()): Source | typeof FROM_MUTED | null {
  if (!link || seen.has(link)) return null;
  seen.add(link);
  const origin = graph.getNodeById(link.origin_id);
  if (!origin) return null;
  if (origin instanceof PrimitiveNode) return { literal: origin.value };
  if (origin.type === "Reroute") {
    return resolveSource(graph, graph.getLink(origin.inputs[0]?.link ?? null), defs, seen);
  }
  if (origin.mode === MUTED) return FROM_MUTED;
  if (origin.mode === BYPASSED) {
    const outType = String(origin.outputs[link.origin_slot]?.type ?? link.type);
    const candidates = origin.inputs
      .map((input, index) => ({ input, index }))
      .filter(({ input }) => input.link != null && String(input.type) === outType);
    candidates.sort((a, b) => Number(b.index === link.origin_slot) - Number(a.index === link.origin_slot));
    for (const { input } of candidates) {
      const source = resolveSource(graph, graph.getLink(input.link), defs, seen);
      if (source) return source;
    }
    return candidates.length ? FROM_MUTED : null;
  }
  if (isFrontendOnly(origin)) return null;
  return [String(origin.id), link.origin_slot];
}

/** A list literal is wrapped so the server never mistakes it for a link. */
function literal(value: unknown): unknown {
  return Array.isArray(value) ? { __value__: value } : value;
}

export function graphToPrompt(graph: LGraph, defs: Map<string, NodeDef>): ApiPrompt {
  const prompt: ApiPrompt = {};
  const fedByMuted = new Set<string>();
  for (const node of graph._nodes) {
    if (node.mode === MUTED || node.mode === BYPASSED || isFrontendOnly(node)) continue;
    const def = defs.get(node.type);
    const inputs: Record<string, unknown> = {};
    const linked = new Set<string>();
    for (const slot of node.inputs) {
      if (slot.link == null) continue;
      const name = slot.widget?.name ?? slot.name;
      linked.add(name);
      const source = resolveSource(graph, graph.getLink(slot.link), defs);
      if (source === FROM_MUTED) fedByMuted.add(String(node.id));
      else if (source && "literal" in source) inputs[name] = literal(source.literal);
      else if (source) inputs[name] = source;
    }
    for (const widget of node.widgets ?? []) {
      if (isControlWidget(widget) || linked.has(widget.name)) continue;
      if (def?.inputs.some((i) => i.name === widget.name)) inputs[widget.name] = literal(widget.value);
    }
    prompt[String(node.id)] = {
      class_type: node.type,
      inputs,
      _meta: { title: node.title },
    };
  }
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
