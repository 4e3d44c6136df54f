// Missing model files: a workflow names files this server does not have (shared workflows name the author's
// models). After a load, or a 400 with `value_not_in_list`, a panel lists each missing file with the files that
// are available for that input, and replaces every use of a missing name with the chosen file in one step.

import type { LGraphNode } from "@comfyorg/litegraph";
import type { ModelProposal, NodeErrors } from "./api";
import { inputSlotFor, isControlWidget } from "./nodes";
import type { NodeDef } from "./schema";
import { el } from "./ui";

/** Extensions of the files the server lists in its model folders (engine/folders.py), plus common others. */
const MODEL_EXTENSIONS = [".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft", ".gguf", ".onnx"];
/** The stand-ins Loom writes on first start (diffusion/demo.py) start with this. */
const DEMO_PREFIX = "loom-demo-";

/** One widget on one node that names a file not among its choices. */
export interface MissingUse {
  node: LGraphNode;
  input: string;
}

/** A missing file name, where it is used, the files that could replace it, and the hash the file recorded. */
export interface MissingModel {
  name: string;
  choices: string[];
  uses: MissingUse[];
  hash?: string;
  folder?: string;
}

/** A model entry as canvas files record them in a node's `properties.models` (name, folder, content hash). */
export interface RecordedModel {
  name: string;
  directory?: string;
  hash?: string;
  hash_type?: string;
}

/** What the panel says of each kind of proposal the server makes. */
const RULE_LABELS: Record<ModelProposal["rule"], string> = {
  hash: "same file, by hash",
  separators: "same path",
  subfolder: "same file name",
  extension: "same name",
  demo: "demo stand-in",
};

export function recordedModels(node: LGraphNode): RecordedModel[] {
  const models = (node.properties as { models?: unknown } | undefined)?.models;
  return Array.isArray(models) ? models.filter((m): m is RecordedModel => typeof m?.name === "string") : [];
}

export function isModelFile(value: string): boolean {
  const lower = value.toLowerCase();
  return MODEL_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

/**
 * Combo widgets (not fed by a link) whose value is a model file missing from the input's choices, grouped by
 * the missing name and its choices. `only` narrows the search to some node id / input pairs.
 */
export function findMissingModels(
  nodes: LGraphNode[],
  defs: Map<string, NodeDef>,
  only?: (nodeId: string, input: string) => boolean,
): MissingModel[] {
  const found = new Map<string, MissingModel>();
  for (const node of nodes) {
    const def = defs.get(node.type);
    for (const input of def?.inputs ?? []) {
      if (input.type !== "COMBO" || (only && !only(String(node.id), input.name))) continue;
      const widget = node.widgets?.find((w) => w.name === input.name && !isControlWidget(w));
      const value = widget?.value;
      if (typeof value !== "string" || !isModelFile(value) || inputSlotFor(node, input.name)?.link != null) continue;
      const choices = (input.choices ?? []).map(String);
      if (choices.includes(value)) continue;
      const key = JSON.stringify([value, choices]);
      const entry: MissingModel = found.get(key) ?? { name: value, choices, uses: [] };
      const recorded = recordedModels(node).find((m) => m.name === value);
      entry.hash ??= recorded?.hash;
      entry.folder ??= recorded?.directory;
      entry.uses.push({ node, input: input.name });
      found.set(key, entry);
    }
  }
  return [...found.values()];
}

/**
 * A filter for `findMissingModels` matching the inputs of a 400 answer's `value_not_in_list` errors that name a
 * model file, or null when there are none.
 */
export function modelErrorFilter(nodeErrors: NodeErrors): ((nodeId: string, input: string) => boolean) | null {
  const pairs = new Set<string>();
  for (const [id, entry] of Object.entries(nodeErrors)) {
    for (const err of entry.errors) {
      const input = err.extra_info?.input_name;
      const value = err.extra_info?.received_value;
      if (err.type === "value_not_in_list" && input && typeof value === "string" && isModelFile(value)) {
        pairs.add(JSON.stringify([id, input]));
      }
    }
  }
  return pairs.size ? (nodeId, input) => pairs.has(JSON.stringify([nodeId, input])) : null;
}

/** The replacement offered first: the only choice, else a Loom demo stand-in, else none. */
export function preselect(choices: string[]): string {
  if (choices.length === 1) return choices[0];
  return choices.find((c) => c.startsWith(DEMO_PREFIX)) ?? "";
}

export class MissingModelsPanel {
  readonly element = el("div", { class: "loom-missing-models", role: "dialog", "aria-label": "Missing models" });

  /** `apply` receives the replacements chosen (missing name -> file) for the uses listed. */
  constructor(private readonly apply: (changes: { uses: MissingUse[]; file: string }[]) => void) {
    this.element.hidden = true;
  }

  get isOpen(): boolean {
    return !this.element.hidden;
  }

  /** `proposals`: for a missing name, the server's proposals best first (`POST /models/resolve`), when it made any. */
  show(missing: MissingModel[], proposals: Map<string, ModelProposal[]> = new Map()): void {
    const rows = missing.map((model) => {
      const select = el("select", { "data-missing": model.name });
      select.append(el("option", { value: "", text: model.choices.length ? "— keep —" : "no files available" }));
      const proposed = proposals.get(model.name) ?? [];
      for (const choice of model.choices) {
        const rule = proposed.find((p) => p.name === choice)?.rule;
        select.append(el("option", { value: choice, text: rule ? `${choice} (${RULE_LABELS[rule]})` : choice }));
      }
      select.value = proposed.find((p) => model.choices.includes(p.name))?.name ?? preselect(model.choices);
      select.disabled = !model.choices.length;
      const where = model.uses.map((u) => `${u.node.title} #${u.node.id} · ${u.input}`).join(", ");
      const row = el("tr", {}, el("td", { class: "name", text: model.name }), el("td", { class: "where", text: where }), el("td", {}, select));
      return { model, select, row };
    });
    const applyButton = el("button", { text: "Apply", class: "apply" });
    const dismiss = el("button", { text: "Dismiss", class: "dismiss" });
    applyButton.onclick = () => {
      const changes = rows.filter((r) => r.select.value).map((r) => ({ uses: r.model.uses, file: r.select.value }));
      this.close();
      if (changes.length) this.apply(changes);
    };
    dismiss.onclick = () => this.close();
    this.element.replaceChildren(
      el("h3", { text: "Missing models" }),
      el("p", { text: "This workflow names model files this server does not have. Pick a replacement for each:" }),
      el(
        "table",
        {},
        el("thead", {}, el("tr", {}, el("th", { text: "Missing file" }), el("th", { text: "Used by" }), el("th", { text: "Replace with" }))),
        el("tbody", {}, ...rows.map((r) => r.row)),
      ),
      el("div", { class: "buttons" }, dismiss, applyButton),
    );
    this.element.hidden = false;
  }

  close(): void {
    this.element.hidden = true;
  }
}
