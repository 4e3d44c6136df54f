// Getting workflows in and out: canvas JSON files, Loom PNGs (the `workflow` text chunk), API-format files
// (laid out in columns by depth), and the browser download of the current canvas.

import { type LGraph, type LGraphNode, LiteGraph } from "@comfyorg/litegraph";
import type { ApiPrompt } from "./api";
import { readPngText } from "./png";

export type Loaded = { kind: "canvas"; data: any } | { kind: "api"; data: ApiPrompt };

export function isApiFormat(data: unknown): data is ApiPrompt {
  if (!data || typeof data !== "object" || Array.isArray(data)) return false;
  const values = Object.values(data as object);
  return values.length > 0 && values.every((v) => v && typeof v === "object" && "class_type" in v);
}

export function classify(data: unknown): Loaded | null {
  if (data && typeof data === "object" && Array.isArray((data as any).nodes)) return { kind: "canvas", data };
  if (isApiFormat(data)) return { kind: "api", data };
  return null;
}

/** Reads a dropped or picked file: JSON in either format, or a PNG carrying its workflow. */
export async function readWorkflowFile(file: File): Promise<Loaded> {
  const isPng = file.type === "image/png" || file.name.toLowerCase().endsWith(".png");
  if (isPng) {
    const chunks = readPngText(await file.arrayBuffer());
    const source = chunks.workflow ?? chunks.prompt;
    if (!source) throw new Error(`${file.name} carries no workflow`);
    const loaded = classify(JSON.parse(source));
    if (!loaded) throw new Error(`${file.name}: the embedded workflow is not readable`);
    return loaded;
  }
  let data: unknown;
  try {
    data = JSON.parse(await file.text());
  } catch {
    throw new Error(`${file.name} is not JSON`);
  }
  const loaded = classify(data);
  if (!loaded) throw new Error(`${file.name} is neither a canvas workflow nor an API-format workflow`);
  return loaded;
}

/** Builds a graph from an API-format workflow: widget values by name, links by slot, columns by depth. */
export function loadApiFormat(graph: LGraph, prompt: ApiPrompt): string[] {
  graph.clear();
  const missing: string[] = [];
  const nodes = new Map<string, LGraphNode>();
  for (const [id, spec] of Object.entries(prompt)) {
    const node = LiteGraph.createNode(spec.class_type, spec._meta?.title);
    if (!node) {
      missing.push(spec.class_type);
      continue;
    }
    node.id = Number.isFinite(Number(id)) ? Number(id) : id;
    graph.add(node);
    nodes.set(id, node);
    for (const [name, value] of Object.entries(spec.inputs)) {
      const widget = node.widgets?.find((w) => w.name === name);
      if (widget && !isLink(value)) {
        widget.value = (value && typeof value === "object" && "__value__" in value ? (value as any).__value__ : value) as never;
      }
    }
  }
  const depth = new Map<string, number>();
  const depthOf = (id: string, trail = new Set<string>()): number => {
    if (depth.has(id)) return depth.get(id)!;
    if (trail.has(id)) return 0;
    trail.add(id);
    const ups = Object.values(prompt[id]?.inputs ?? {}).filter(isLink).map((v) => depthOf(String(v[0]), trail) + 1);
    const d = Math.max(0, ...ups);
    depth.set(id, d);
    return d;
  };
  const rows = new Map<number, number>();
  for (const [id, node] of nodes) {
    const d = depthOf(id);
    const row = rows.get(d) ?? 0;
    rows.set(d, row + 1);
    node.pos = [40 + d * 360, 40 + row * 260];
    for (const [name, value] of Object.entries(prompt[id].inputs)) {
      if (!isLink(value)) continue;
      const source = nodes.get(String(value[0]));
      if (!source) continue;
      let slot = node.findInputSlot(name);
      if (slot < 0 && node.widgets?.some((w) => w.name === name)) {
        node.addInput(name, String(source.outputs[value[1]]?.type ?? "*"), { widget: { name } });
        slot = node.findInputSlot(name);
      }
      if (slot >= 0) source.connect(value[1], node, slot);
    }
  }
  return missing;
}

function isLink(value: unknown): value is [string | number, number] {
  return Array.isArray(value) && value.length === 2 && typeof value[1] === "number" && !Array.isArray(value[0]);
}

export function downloadJson(data: unknown, filename: string): void {
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Node types a canvas workflow uses that this server does not know (reported before loading). */
export function missingTypes(data: any): string[] {
  const types = new Set<string>();
  for (const node of data?.nodes ?? []) {
    if (node?.type && !LiteGraph.registered_node_types[node.type]) types.add(node.type);
  }
  return [...types];
}

/**
 * The canvas document of a graph, each node listing a slot for every widget input (unlinked ones appended, so
 * linked slots keep their numbers), as current front ends write them: client libraries that convert canvas
 * files read widget names from these slots.
 */
export function serializeWorkflow(graph: LGraph): any {
  const data = graph.serialize() as any;
  for (const saved of data.nodes ?? []) {
    const def = (graph.getNodeById(saved.id) as any)?.def as { inputs: { name: string; type: string; widget: boolean }[] };
    if (!def) continue;
    saved.inputs ??= [];
    const listed = new Set(saved.inputs.map((slot: any) => slot.widget?.name ?? slot.name));
    for (const input of def.inputs) {
      if (input.widget && !listed.has(input.name)) {
        saved.inputs.push({ name: input.name, type: input.type, widget: { name: input.name }, link: null });
      }
    }
  }
  return data;
}
