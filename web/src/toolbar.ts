// The toolbar across the top: queue (with batch count) and interrupt, workflow file actions, undo/redo, the
// model refresh and the connection status. It only lays out buttons; each action belongs to its own module.

import { el } from "./ui";

export interface ToolbarActions {
  queue(): void;
  interrupt(): void;
  addNode(): void;
  save(): void;
  load(): void;
  examples(): void;
  loadDefault(): void;
  clear(): void;
  undo(): void;
  redo(): void;
  refreshModels(): void;
  exportApi(): void;
  settings(): void;
}

/** Elements owned elsewhere that sit in the toolbar. */
export interface ToolbarParts {
  batch: HTMLInputElement;
  status: HTMLElement;
  filePicker: HTMLInputElement;
}

function button(text: string, title: string, action: (e: MouseEvent) => void, id: string): HTMLButtonElement {
  const b = el("button", { text, title, id });
  b.onclick = action;
  return b;
}

export function buildToolbar(actions: ToolbarActions, parts: ToolbarParts): HTMLElement {
  return el(
    "header",
    { class: "toolbar" },
    el("strong", { class: "logo", text: "Loom" }),
    button("Queue", "Queue the workflow (Ctrl+Enter)", () => actions.queue(), "queue-button"),
    el("label", { class: "batch" }, "×", parts.batch),
    button("Interrupt", "Stop the running job", () => actions.interrupt(), "interrupt-button"),
    el("span", { class: "sep" }),
    button("Add node", "Search node types (double-click the canvas)", () => actions.addNode(), "add-node"),
    button("Save", "Download the workflow as JSON (Ctrl+S)", () => actions.save(), "save-button"),
    button("Load", "Open a workflow JSON or a Loom PNG (Ctrl+O)", () => actions.load(), "load-button"),
    button("Export API", "Download the workflow in the API format (for POST /prompt and `main.py run`)", () => actions.exportApi(), "export-api-button"),
    parts.filePicker,
    button("Examples", "Open an example workflow", () => actions.examples(), "examples-button"),
    button("Default", "Load the default txt2img workflow", () => actions.loadDefault(), "default-button"),
    button("Clear", "Remove every node", () => actions.clear(), "clear-button"),
    button("↶", "Undo (Ctrl+Z)", () => actions.undo(), "undo-button"),
    button("↷", "Redo (Ctrl+Y)", () => actions.redo(), "redo-button"),
    button("⟳ Models", "Re-read the model folders (refresh combo lists)", () => actions.refreshModels(), "refresh-button"),
    button("⚙", "Settings", () => actions.settings(), "settings-button"),
    el("span", { class: "spacer" }),
    parts.status,
  );
}
