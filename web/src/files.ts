// Workflows and images in and out of the canvas: the default workflow, files picked or dropped (JSON in either
// format, Loom PNGs) and the server's examples, each opened through `opener` (a tab of its own), the download,
// and images uploaded to the input folder (a picker's button or a drop onto its node).

import type { Api, ApiPrompt } from "./api";
import { buildDefaultWorkflow } from "./default_workflow";
import type { ValidationPanel } from "./errors";
import { ExamplesDialog } from "./examples";
import { UNSAVED_TITLE } from "./tabs";
import type { GraphState } from "./graph_state";
import { recordModelHashes } from "./model_hashes";
import type { NodeTypes } from "./node_types";
import type { LoomNode } from "./nodes";
import { el, toast } from "./ui";
import {
  classify,
  downloadJson,
  loadApiFormat,
  type Loaded,
  missingTypes,
  readWorkflowFile,
  serializeWorkflow,
} from "./workflow_io";

export class Files {
  /** The hidden file input behind "Load" and Ctrl+O. */
  readonly picker: HTMLInputElement;
  readonly examples: ExamplesDialog;
  /** A drop from the node or model library, handled (true) before files are looked at. */
  libraryDrop: (e: DragEvent) => boolean = () => false;
  /**
   * Opens a loaded workflow: `load` puts it on the emptied graph, `title` names it. The tabs give it a tab of
   * its own (app.ts); by default it replaces the canvas as one undo step.
   */
  opener: (load: () => void, title: string, saved: string | null) => void = (load) => this.state.replace(load);

  constructor(
    private readonly api: Api,
    private readonly state: GraphState,
    private readonly nodeTypes: NodeTypes,
    private readonly validation: ValidationPanel,
  ) {
    this.picker = el("input", { type: "file", accept: ".json,.png,application/json,image/png", id: "file-input" });
    this.picker.hidden = true;
    this.examples = new ExamplesDialog(api, (workflow, title) => this.loadWorkflow(workflow, title));
    this.picker.onchange = () => {
      const file = this.picker.files?.[0];
      if (file) void this.loadFile(file);
      this.picker.value = "";
    };
  }

  openPicker(): void {
    this.picker.click();
  }

  /** Puts the default workflow on the graph, in view. */
  buildDefault(): void {
    buildDefaultWorkflow(this.state.graph);
    this.state.fitView();
  }

  /** The "Default" button: the active workflow becomes the default one (one undo step). */
  loadDefault(): void {
    this.state.replace(() => this.buildDefault());
  }

  #apply(loaded: Loaded): void {
    this.validation.clear();
    if (loaded.kind === "api") {
      const missing = loadApiFormat(this.state.graph, loaded.data);
      if (missing.length) toast(`Unknown node types: ${[...new Set(missing)].join(", ")}`, "error", 8000);
    } else {
      const missing = missingTypes(loaded.data);
      if (missing.length) toast(`Unknown node types (kept, but not runnable): ${missing.join(", ")}`, "error", 8000);
      this.state.graph.configure(structuredClone(loaded.data));
    }
    this.state.fitView();
  }

  /**
   * Opens a workflow (either format) in a tab named `title`, `saved` when it is a saved workflow of that name;
   * false when `data` is none.
   */
  loadWorkflow(data: unknown, title = UNSAVED_TITLE, saved: string | null = null): boolean {
    const loaded = classify(data);
    if (!loaded) {
      toast("Not a workflow", "error");
      return false;
    }
    this.opener(() => this.#apply(loaded), title, saved);
    void this.nodeTypes.checkModels();
    return true;
  }

  async loadFile(file: File): Promise<void> {
    try {
      const loaded = await readWorkflowFile(file);
      this.opener(() => this.#apply(loaded), file.name.replace(/\.(api\.)?(json|png)$/i, ""), null);
      toast(`Loaded ${file.name}`);
      void this.nodeTypes.checkModels();
    } catch (e) {
      toast((e as Error).message, "error");
    }
  }

  /** Downloads the workflow, with each model file's hash recorded for whoever opens it next. */
  async save(): Promise<void> {
    const data = serializeWorkflow(this.state.graph);
    await recordModelHashes(this.state.graph, data as { nodes?: { id: number }[] }, this.api);
    downloadJson(data, "workflow.json");
  }

  /** Downloads the canvas in the API format (what `POST /prompt` and `main.py run` take). */
  exportApi(prompt: ApiPrompt): void {
    downloadJson(prompt, "workflow.api.json");
  }

  /** The server's examples, one card each; the one picked replaces the canvas. */
  showExamples(): Promise<void> {
    return this.examples.show();
  }

  async uploadImage(file: File): Promise<string | null> {
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("overwrite", "true");
    try {
      const res = await this.api.json<{ name: string; subfolder?: string }>("/upload/image", { method: "POST", body: form });
      return res.subfolder ? `${res.subfolder}/${res.name}` : res.name;
    } catch (e) {
      toast(`Upload failed: ${(e as Error).message}`, "error");
      return null;
    }
  }

  /** An image dropped on a node with an image picker goes to the input folder and is selected there. */
  async #uploadInto(node: LoomNode, comboName: string, file: File): Promise<void> {
    const name = await this.uploadImage(file);
    const combo = node.widgets?.find((w) => w.name === comboName);
    if (!name || !combo) return;
    const values = combo.options.values as string[];
    if (!values.includes(name)) values.push(name);
    combo.value = name;
    combo.callback?.(name);
    this.state.changed();
  }

  /** A file dropped anywhere opens as a workflow, or, an image dropped on an image picker node, is uploaded. */
  bindDrop(): void {
    const { canvas, graph } = this.state;
    this.state.canvasEl.addEventListener("dragover", (e) => e.preventDefault());
    document.addEventListener("dragover", (e) => e.preventDefault());
    document.addEventListener("drop", (e) => {
      e.preventDefault();
      if (this.libraryDrop(e)) return;
      const file = e.dataTransfer?.files?.[0];
      if (!file) return;
      const [x, y] = canvas.convertEventToCanvasOffset(e);
      const node = graph.getNodeOnPos(x, y) as LoomNode | null;
      const combo = node?.def?.inputs.find((i) => i.type === "COMBO" && i.options.image_upload);
      if (node && combo && file.type.startsWith("image/")) void this.#uploadInto(node, combo.name, file);
      else void this.loadFile(file);
    });
  }
}
