// The library sidebars: node types as a category tree and the server's model files per folder
// (`/experiment/models`). Either is dragged onto the canvas: a node type becomes that node, a model file becomes
// the loader whose picker lists it, with the file selected.

import type { Api } from "./api";
import type { GraphState } from "./graph_state";
import type { NodeDef } from "./schema";
import { el, toast } from "./ui";

const NODE_MIME = "application/x-loom-node";
const MODEL_MIME = "application/x-loom-model";

interface ModelDrop {
  folder: string;
  name: string;
}

/** The node type that loads `file`: one with a picker listing it, the one with the fewest inputs first. */
export function loaderFor(defs: Map<string, NodeDef>, file: string): { type: string; input: string } | null {
  const candidates = [...defs.values()]
    .filter((d) => !d.deprecated)
    .flatMap((d) => d.inputs.filter((i) => i.type === "COMBO" && (i.choices ?? []).map(String).includes(file)).map((i) => ({ def: d, input: i.name })))
    .sort((a, b) => a.def.inputs.length - b.def.inputs.length || a.def.name.localeCompare(b.def.name));
  return candidates[0] ? { type: candidates[0].def.name, input: candidates[0].input } : null;
}

/** Node types by category ("latent/upscaling" nests), each draggable onto the canvas. */
export class NodeLibrary {
  readonly element = el("section", { class: "loom-panel library-panel node-library" });

  constructor(private readonly defs: () => Map<string, NodeDef>) {}

  render(): void {
    const root = new Map<string, any>();
    for (const def of [...this.defs().values()].sort((a, b) => a.displayName.localeCompare(b.displayName))) {
      let level = root;
      for (const part of (def.category || "uncategorized").split("/")) {
        if (!level.has(part)) level.set(part, new Map());
        level = level.get(part);
      }
      level.set(`\u0000${def.name}`, def);
    }
    this.element.replaceChildren(el("h2", { text: "Node library" }), this.#tree(root));
  }

  #tree(level: Map<string, any>): HTMLElement {
    const list = el("ul", { class: "tree" });
    const entries = [...level.entries()].sort(([a], [b]) => Number(a.startsWith("\u0000")) - Number(b.startsWith("\u0000")) || a.localeCompare(b));
    for (const [key, value] of entries) {
      if (key.startsWith("\u0000")) {
        const def = value as NodeDef;
        const item = el("li", { class: "leaf", draggable: "true", "data-type": def.name, title: def.description || def.name, text: def.displayName });
        item.addEventListener("dragstart", (e) => e.dataTransfer?.setData(NODE_MIME, def.name));
        list.append(item);
      } else {
        list.append(el("li", {}, el("details", { "data-category": key }, el("summary", { text: key }), this.#tree(value))));
      }
    }
    return list;
  }
}

/** The server's model files, one folder per section, each file draggable onto the canvas. */
export class ModelLibrary {
  readonly element = el("section", { class: "loom-panel library-panel model-library" });

  constructor(private readonly api: Api) {}

  async refresh(): Promise<void> {
    let folders: { name: string }[];
    try {
      folders = await this.api.json("/experiment/models");
    } catch {
      this.element.replaceChildren(el("h2", { text: "Models" }), el("div", { class: "empty", text: "This server lists no models" }));
      return;
    }
    const sections = await Promise.all(
      folders.map(async ({ name }) => {
        const files = await this.api.json<{ name: string }[]>(`/experiment/models/${encodeURIComponent(name)}`).catch(() => []);
        if (!files.length) return null;
        const items = files.map((file) => {
          const item = el("li", { draggable: "true", "data-model": file.name, text: file.name, title: `Drag onto the canvas to load ${file.name}` });
          item.addEventListener("dragstart", (e) => e.dataTransfer?.setData(MODEL_MIME, JSON.stringify({ folder: name, name: file.name })));
          return item;
        });
        return el("details", { "data-folder": name, open: "" }, el("summary", { text: `${name} (${files.length})` }), el("ul", {}, ...items));
      }),
    );
    const shown = sections.filter((s): s is HTMLDetailsElement => s !== null);
    this.element.replaceChildren(el("h2", { text: "Models" }), ...(shown.length ? shown : [el("div", { class: "empty", text: "No model files" })]));
  }
}

/**
 * Handles a drop from a library: true when the drop was one (a node or a loader was added at the drop point),
 * false for anything else (files are another handler's).
 */
export function dropFromLibrary(e: DragEvent, state: GraphState, defs: Map<string, NodeDef>): boolean {
  const type = e.dataTransfer?.getData(NODE_MIME);
  const model = e.dataTransfer?.getData(MODEL_MIME);
  if (type) {
    state.addNodeAt(type, [e.clientX, e.clientY]);
    return true;
  }
  if (!model) return false;
  const { name } = JSON.parse(model) as ModelDrop;
  const loader = loaderFor(defs, name);
  if (!loader) {
    toast(`No node loads ${name}`, "error");
    return true;
  }
  const node = state.addNodeAt(loader.type, [e.clientX, e.clientY]);
  const widget = node?.widgets?.find((w) => w.name === loader.input);
  if (widget) {
    widget.value = name;
    widget.callback?.(name);
    state.changed();
  }
  return true;
}
