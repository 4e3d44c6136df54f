// The application: owns the graph and canvas, talks to the server, and ties the panels together.

import { LGraph, LGraphCanvas, LGraphGroup, type LGraphNode, LiteGraph } from "@comfyorg/litegraph";
import { Api, ApiError, type NodeErrors, type ObjectInfo } from "./api";
import { graphToPrompt } from "./convert";
import { buildDefaultWorkflow } from "./default_workflow";
import { ValidationPanel } from "./errors";
import { ExecutionView } from "./execution";
import { Extensions } from "./extensions";
import { findMissingModels, type MissingUse, MissingModelsPanel, modelErrorFilter } from "./missing_models";
import { type LoomNode, PrimitiveNode, refreshCombos, registerNodes, toggleMode, typesCompatible } from "./nodes";
import { Palette, type SlotFilter } from "./palette";
import { Gallery, QueuePanel } from "./panels";
import { CONTROL_WIDGET, type NodeDef, nextControlledValue } from "./schema";
import { type ServerMessage, Socket } from "./socket";
import { el, openLightbox, toast } from "./ui";
import { UndoStack } from "./undo";
import { classify, downloadJson, loadApiFormat, type Loaded, missingTypes, readWorkflowFile } from "./workflow_io";

const STORAGE_KEY = "loom.workflow";
const CLIENT_KEY = "loom.clientId";

function clientId(): string {
  let id = sessionStorage.getItem(CLIENT_KEY);
  if (!id) {
    id = crypto.randomUUID?.() ?? `${Date.now().toString(16)}${Math.random().toString(16).slice(2)}`;
    sessionStorage.setItem(CLIENT_KEY, id);
  }
  return id;
}

export class App {
  readonly api = new Api();
  readonly graph = new LGraph();
  readonly canvas: LGraphCanvas;
  readonly extensions = new Extensions();
  readonly socket: Socket;
  defs = new Map<string, NodeDef>();
  objectInfo: ObjectInfo = {};
  readonly queuePanel: QueuePanel;
  readonly gallery: Gallery;
  readonly palette: Palette;
  undo!: UndoStack;
  readonly execution: ExecutionView;
  /** Timestamps the tests and bench read. */
  readonly timings: Record<string, number> = {};
  /** Server messages re-dispatched as DOM events (type = message type, detail = data) for extensions. */
  readonly events = new EventTarget();
  readonly #canvasEl: HTMLCanvasElement;
  readonly #progress: HTMLDivElement;
  readonly #status: HTMLSpanElement;
  readonly #validation: ValidationPanel;
  readonly missingModels = new MissingModelsPanel((changes) => this.#replaceModels(changes));
  #saveTimer = 0;
  /** The slot a link was dragged from when the palette opened on its release. */
  #linkSource: { node: LGraphNode; slot: { type: unknown }; fromOutput: boolean } | null = null;
  #batch: HTMLInputElement;

  constructor(root: HTMLElement) {
    this.#canvasEl = el("canvas", { id: "graph-canvas", tabindex: "0" });
    this.#progress = el("div", { class: "bar" });
    this.#status = el("span", { class: "status", text: "connecting…" });
    this.#batch = el("input", { type: "number", min: "1", max: "100", value: "1", id: "batch-count", title: "Batch count" });
    this.queuePanel = new QueuePanel(this.api);
    this.gallery = new Gallery(this.api);
    root.append(
      this.#toolbar(),
      el("div", { class: "global-progress" }, this.#progress),
      el("main", {}, el("div", { class: "canvas-host" }, this.#canvasEl), el("aside", {}, this.queuePanel.element, this.gallery.element)),
    );
    LiteGraph.release_link_on_empty_shows_menu = true;
    LiteGraph.middle_click_slot_add_default_node = true;
    this.canvas = new LGraphCanvas(this.#canvasEl, this.graph);
    this.#validation = new ValidationPanel(this.graph, this.canvas);
    this.execution = new ExecutionView(this.graph, this.canvas, this.api, this.gallery, this.#progress);
    root.append(this.#validation.element, this.missingModels.element);
    this.canvas.show_info = false;
    this.canvas.render_canvas_border = false;
    this.canvas.showSearchBox = (event: MouseEvent, options?: any) => {
      this.#linkSource = null;
      let filter: SlotFilter | null = null;
      if (options?.node_from && options.slot_from) {
        filter = { type: String(options.slot_from.type), input: true };
        this.#linkSource = { node: options.node_from, slot: options.slot_from, fromOutput: true };
      } else if (options?.node_to && (options.slot_to || options.slot_from)) {
        const slot = options.slot_to ?? options.slot_from;
        filter = { type: String(slot.type), input: false };
        this.#linkSource = { node: options.node_to, slot, fromOutput: false };
      }
      this.palette.open([event.clientX, event.clientY], event, filter);
      return this.palette.element;
    };
    this.palette = new Palette({
      defs: () => this.defs,
      add: (type, pos, filter) => {
        const node = this.addNodeAt(type, pos);
        if (node && filter) this.#connectToLinkSource(node);
      },
      compatible: typesCompatible,
    });
    this.socket = new Socket(
      this.api,
      {
        message: (msg) => this.#onMessage(msg),
        preview: (blob) => this.execution.preview(blob),
        connection: (state, reconnected) => this.#onConnection(state, reconnected),
      },
      clientId(),
    );
  }

  /** Id of the node running now (null when idle). */
  get runningNode(): string | null {
    return this.execution.runningNode;
  }

  async start(): Promise<void> {
    this.timings.start = performance.now();
    (window as any).loom = {
      app: this,
      LiteGraph,
      registerExtension: (e: any) => this.extensions.register(e),
      compat: this.#compat(),
    };
    this.#resize();
    window.addEventListener("resize", () => this.#resize());
    this.objectInfo = await this.api.objectInfo();
    const failed = await this.extensions.load(this.api);
    if (failed.length) toast(`${failed.length} extension(s) failed to load`, "error");
    this.extensions.call("init", (window as any).loom.compat.app);
    this.#register();
    this.#loadInitialWorkflow();
    this.undo = new UndoStack(
      () => this.#snapshot(),
      (state) => this.#restore(state),
    );
    this.#bindInput();
    this.socket.connect();
    this.extensions.call("setup", this);
    await Promise.all([this.queuePanel.refresh(), this.gallery.loadHistory()]);
    this.timings.ready = performance.now();
  }

  /** The objects extensions written for the ecosystem's canvas import from scripts/app.js and scripts/api.js. */
  #compat(): { app: object; api: object } {
    const self = this;
    const api = {
      addEventListener: (type: string, listener: EventListener) => self.events.addEventListener(type, listener),
      removeEventListener: (type: string, listener: EventListener) => self.events.removeEventListener(type, listener),
      fetchApi: (route: string, init?: RequestInit) => self.api.fetch(route, init),
      apiURL: (route: string) => `${self.api.base}${route}`,
      get clientId() {
        return self.socket.clientId;
      },
    };
    const app = {
      api,
      registerExtension: (extension: any) => self.extensions.register(extension),
      get graph() {
        return self.graph;
      },
      get canvas() {
        return self.canvas;
      },
      queuePrompt: (_number: number, batch = 1) => self.queue(batch),
      graphToPrompt: () => ({ output: self.prompt(), workflow: self.graph.serialize() }),
      loadGraphData: (data: unknown) => self.loadWorkflow(data),
    };
    return { app, api };
  }

  #register(): void {
    this.defs = registerNodes(this.objectInfo, this.canvas, {
      uploadImage: (file) => this.uploadImage(file),
      inputImageUrl: (name) => {
        const slash = name.lastIndexOf("/");
        return this.api.viewUrl({ filename: name.slice(slash + 1), subfolder: name.slice(0, Math.max(slash, 0)), type: "input" });
      },
      nodeCreated: (node) => this.extensions.call("nodeCreated", node, (window as any).loom?.compat.app),
      openImage: (url) => openLightbox(url),
      beforeRegister: (cls, info) => this.extensions.call("beforeRegisterNodeDef", cls, info, (window as any).loom?.compat.app),
    });
  }

  #toolbar(): HTMLElement {
    const button = (text: string, title: string, action: (e: MouseEvent) => void, id?: string) => {
      const b = el("button", { text, title, id });
      b.onclick = action;
      return b;
    };
    const fileInput = el("input", { type: "file", accept: ".json,.png,application/json,image/png", id: "file-input" });
    fileInput.hidden = true;
    fileInput.onchange = () => {
      const file = fileInput.files?.[0];
      if (file) void this.loadFile(file);
      fileInput.value = "";
    };
    return el(
      "header",
      { class: "toolbar" },
      el("strong", { class: "logo", text: "Loom" }),
      button("Queue", "Queue the workflow (Ctrl+Enter)", () => void this.queue(), "queue-button"),
      el("label", { class: "batch" }, "×", this.#batch),
      button("Interrupt", "Stop the running job", () => void this.api.interrupt(), "interrupt-button"),
      el("span", { class: "sep" }),
      button("Add node", "Search node types (double-click the canvas)", () => this.palette.open([200, 120]), "add-node"),
      button("Save", "Download the workflow as JSON (Ctrl+S)", () => this.save(), "save-button"),
      button("Load", "Open a workflow JSON or a Loom PNG (Ctrl+O)", () => fileInput.click(), "load-button"),
      fileInput,
      button("Examples", "Open an example workflow from workflows/", (e) => void this.#showExamples(e), "examples-button"),
      button("Default", "Load the default txt2img workflow", () => this.loadDefault(), "default-button"),
      button("Clear", "Remove every node", () => this.#replace(() => this.graph.clear()), "clear-button"),
      button("↶", "Undo (Ctrl+Z)", () => this.undo.undo(), "undo-button"),
      button("↷", "Redo (Ctrl+Y)", () => this.undo.redo(), "redo-button"),
      button("⟳ Models", "Re-read the model folders (refresh combo lists)", () => void this.refreshModels(), "refresh-button"),
      el("span", { class: "spacer" }),
      this.#status,
    );
  }

  #resize(): void {
    const host = this.#canvasEl.parentElement!;
    const scale = Math.max(window.devicePixelRatio, 1);
    const { width, height } = host.getBoundingClientRect();
    this.#canvasEl.style.width = `${width}px`;
    this.#canvasEl.style.height = `${height}px`;
    this.canvas.resize(Math.round(width * scale), Math.round(height * scale));
    this.#canvasEl.getContext("2d")?.scale(scale, scale);
    this.canvas.setDirty(true, true);
  }

  // ---- workflows -------------------------------------------------------------------------------------

  #snapshot(): string {
    const data = this.graph.serialize() as any;
    delete data.extra?.ds;
    return JSON.stringify(data);
  }

  #restore(state: string): void {
    this.graph.configure(JSON.parse(state));
    this.canvas.setDirty(true, true);
    this.#persist();
  }

  /**
   * Runs a whole-graph replacement and makes it one undo step. Drawn before the snapshot: the first draw sizes
   * nodes to their widgets, which would otherwise differ from the snapshot and break redo past this step.
   */
  #replace(action: () => void): void {
    action();
    this.canvas.draw(true, true);
    this.#changed();
  }

  #changed(): void {
    if (this.undo?.check()) this.#persist();
  }

  #persist(): void {
    window.clearTimeout(this.#saveTimer);
    this.#saveTimer = window.setTimeout(() => {
      try {
        localStorage.setItem(STORAGE_KEY, JSON.stringify(this.graph.serialize()));
      } catch {
        // Storage full or disabled: the canvas still works, it just will not survive a reload.
      }
    }, 300);
  }

  #loadInitialWorkflow(): void {
    const stored = localStorage.getItem(STORAGE_KEY);
    if (stored) {
      try {
        const loaded = classify(JSON.parse(stored));
        if (loaded) {
          this.#applyLoaded(loaded);
          return;
        }
      } catch {
        // A corrupt stored workflow falls back to the default one.
      }
    }
    buildDefaultWorkflow(this.graph);
    this.fitView();
  }

  loadDefault(): void {
    this.#replace(() => {
      buildDefaultWorkflow(this.graph);
      this.fitView();
    });
  }

  /** Zooms and pans so every node is in view (never zooming in past 1:1). */
  fitView(): void {
    const nodes = this.graph._nodes;
    if (!nodes.length) return;
    // Measured from pos/size: node bounding rects are only filled in by the first draw.
    const title = LiteGraph.NODE_TITLE_HEIGHT;
    const x0 = Math.min(...nodes.map((n) => n.pos[0])) - 40;
    const y0 = Math.min(...nodes.map((n) => n.pos[1] - title)) - 40;
    const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0])) + 40;
    const y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1])) + 40;
    const ds = this.canvas.ds;
    const width = this.#canvasEl.width / Math.max(window.devicePixelRatio, 1);
    const height = this.#canvasEl.height / Math.max(window.devicePixelRatio, 1);
    ds.scale = Math.min(1, width / (x1 - x0), height / (y1 - y0));
    ds.offset = [-x0 + (width / ds.scale - (x1 - x0)) / 2, -y0 + (height / ds.scale - (y1 - y0)) / 2];
    this.canvas.setDirty(true, true);
  }

  #applyLoaded(loaded: Loaded): void {
    this.#validation.clear();
    if (loaded.kind === "api") {
      const missing = loadApiFormat(this.graph, loaded.data);
      if (missing.length) toast(`Unknown node types: ${[...new Set(missing)].join(", ")}`, "error", 8000);
    } else {
      const missing = missingTypes(loaded.data);
      if (missing.length) toast(`Unknown node types (kept, but not runnable): ${missing.join(", ")}`, "error", 8000);
      this.graph.configure(structuredClone(loaded.data));
    }
    this.fitView();
  }

  loadWorkflow(data: unknown): boolean {
    const loaded = classify(data);
    if (!loaded) {
      toast("Not a workflow", "error");
      return false;
    }
    this.#replace(() => this.#applyLoaded(loaded));
    void this.checkModels();
    return true;
  }

  async loadFile(file: File): Promise<void> {
    try {
      const loaded = await readWorkflowFile(file);
      this.#replace(() => this.#applyLoaded(loaded));
      toast(`Loaded ${file.name}`);
      void this.checkModels();
    } catch (e) {
      toast((e as Error).message, "error");
    }
  }

  save(): void {
    downloadJson(this.graph.serialize(), "workflow.json");
  }

  /** Lists the server's example workflows in a menu (fetched on demand: a server may not have the route). */
  async #showExamples(event: MouseEvent): Promise<void> {
    let names: string[];
    try {
      names = await this.api.workflows();
    } catch {
      toast("This server does not list example workflows", "error");
      return;
    }
    if (!names.length) {
      toast("No example workflows on this server");
      return;
    }
    new LiteGraph.ContextMenu(names, {
      event,
      callback: (value: unknown) => void this.openExample(String(value)),
    });
  }

  async openExample(name: string): Promise<void> {
    try {
      this.loadWorkflow(await this.api.workflow(name));
    } catch (e) {
      toast(`Could not open ${name}: ${(e as Error).message}`, "error");
    }
  }

  async refreshModels(): Promise<void> {
    try {
      await this.#reloadSchema();
    } catch (e) {
      toast(`Refresh failed: ${(e as Error).message}`, "error");
      return;
    }
    toast("Model lists refreshed");
  }

  /** Re-reads /object_info (the model folders) and updates the node types and the combos on the canvas. */
  async #reloadSchema(): Promise<void> {
    this.objectInfo = await this.api.objectInfo();
    this.#register();
    refreshCombos(this.graph._nodes, this.defs);
    this.canvas.setDirty(true, true);
  }

  /**
   * Offers replacements for model files the canvas names but the server lacks (after fresh model lists);
   * `only` limits the check to some node id / input pairs. Resolves to the number of missing names.
   */
  async checkModels(only?: (nodeId: string, input: string) => boolean): Promise<number> {
    try {
      await this.#reloadSchema();
    } catch {
      // The lists already loaded still tell what is missing.
    }
    const missing = findMissingModels(this.graph._nodes, this.defs, only);
    if (missing.length) this.missingModels.show(missing);
    this.timings.modelsChecked = performance.now();
    return missing.length;
  }

  #replaceModels(changes: { uses: MissingUse[]; file: string }[]): void {
    for (const { uses, file } of changes) {
      for (const { node, input } of uses) {
        const widget = node.widgets?.find((w) => w.name === input);
        if (!widget) continue;
        widget.value = file;
        widget.callback?.(file);
      }
    }
    this.#validation.clear();
    this.canvas.setDirty(true, true);
    this.#changed();
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
    this.#changed();
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

  addNodeAt(type: string, screenPos: [number, number]): LGraphNode | null {
    const node = LiteGraph.createNode(type);
    if (!node) return null;
    const rect = this.#canvasEl.getBoundingClientRect();
    const pos = this.canvas.convertCanvasToOffset([screenPos[0] - rect.left, screenPos[1] - rect.top]);
    node.pos = [pos[0], pos[1]];
    this.graph.beforeChange();
    this.graph.add(node);
    this.graph.afterChange();
    this.canvas.selectNode(node);
    this.#changed();
    return node;
  }

  #connectToLinkSource(node: LGraphNode): void {
    const source = this.#linkSource;
    this.#linkSource = null;
    if (!source) return;
    const type = String(source.slot.type);
    if (source.fromOutput) {
      const out = source.node.outputs.indexOf(source.slot as never);
      const input = node.inputs.findIndex((i) => typesCompatible(type, String(i.type)));
      if (out >= 0 && input >= 0) source.node.connect(out, node, input);
    } else {
      const input = source.node.inputs.indexOf(source.slot as never);
      const out = node.outputs.findIndex((o) => typesCompatible(String(o.type), type));
      if (out >= 0 && input >= 0) node.connect(out, source.node, input);
    }
    this.#changed();
  }

  // ---- queueing --------------------------------------------------------------------------------------

  /** The current canvas in the API format, as it would be queued. */
  prompt(): ReturnType<typeof graphToPrompt> {
    return graphToPrompt(this.graph, this.defs);
  }

  async queue(batch = Number(this.#batch.value) || 1): Promise<string[]> {
    const ids: string[] = [];
    this.#validation.clear();
    for (let i = 0; i < Math.max(1, batch); i++) {
      const prompt = this.prompt();
      const workflow = this.graph.serialize();
      try {
        const res = await this.api.queuePrompt({
          prompt,
          client_id: this.socket.clientId,
          extra_data: { extra_pnginfo: { workflow } },
        });
        ids.push(res.prompt_id);
      } catch (e) {
        this.#onQueueError(e);
        break;
      }
      this.#applyControlAfterGenerate();
    }
    if (ids.length) toast(ids.length > 1 ? `Queued ${ids.length} runs` : "Queued");
    await this.queuePanel.refresh();
    return ids;
  }

  #applyControlAfterGenerate(): void {
    for (const node of this.graph._nodes) {
      const inputs = node instanceof PrimitiveNode ? [node.adopted] : this.defs.get(node.type)?.inputs;
      if (!inputs || !node.widgets) continue;
      for (const control of node.widgets.filter((w) => w.name === CONTROL_WIDGET)) {
        const target = node.widgets.find((w) => w.name === (control as any).loomControlFor);
        const input = inputs.find((i) => i?.name === target?.name);
        if (!target || !input || control.value === "fixed") continue;
        if (input.type === "COMBO") {
          const values = (input.choices ?? []).map(String);
          const idx = values.indexOf(String(target.value));
          const step = control.value === "decrement" ? -1 : 1;
          target.value = control.value === "randomize" ? values[Math.floor(Math.random() * values.length)] : values[(idx + step + values.length) % values.length];
        } else target.value = nextControlledValue(Number(target.value), String(control.value), input);
      }
    }
    this.canvas.setDirty(true, false);
    this.#changed();
  }

  #onQueueError(e: unknown): void {
    if (e instanceof ApiError && e.body) {
      const body = e.body;
      this.showValidationErrors(body.error?.message ?? "Invalid workflow", body.node_errors ?? {}, body.error?.details);
      const only = modelErrorFilter(body.node_errors ?? {});
      if (only) void this.checkModels(only);
    } else {
      toast(`Could not queue: ${(e as Error).message}`, "error", 8000);
    }
  }

  showValidationErrors(message: string, nodeErrors: NodeErrors, details?: string): void {
    this.#validation.show(message, nodeErrors, details);
  }

  // ---- server events ---------------------------------------------------------------------------------

  #onConnection(state: "open" | "closed", reconnected: boolean): void {
    this.#status.textContent = state === "open" ? "connected" : "reconnecting…";
    this.#status.className = `status ${state}`;
    if (state === "open" && reconnected) {
      toast("Reconnected to the server");
      void this.queuePanel.refresh();
      void this.gallery.loadHistory();
    }
    if (state === "closed") this.execution.setRunning(null);
  }

  #onMessage(msg: ServerMessage): void {
    const data = msg.data ?? {};
    this.events.dispatchEvent(new CustomEvent(msg.type, { detail: data }));
    if (msg.type === "status") {
      const remaining = data.status?.exec_info?.queue_remaining ?? 0;
      this.#status.textContent = `connected · queue ${remaining}`;
      void this.queuePanel.refresh();
    } else {
      this.execution.handle(msg.type, data);
      if (msg.type === "executing" && data.node == null) void this.queuePanel.refresh();
    }
  }

  // ---- input -----------------------------------------------------------------------------------------

  #bindInput(): void {
    const canvasEl = this.#canvasEl;
    // Every gesture that may have changed the graph ends in one of these; the undo stack diffs snapshots.
    // Capturing on window: litegraph stops some events at the canvas; the timeout lets it finish first.
    for (const type of ["pointerup", "keyup", "change"]) {
      window.addEventListener(type, () => window.setTimeout(() => this.#changed(), 0), true);
    }
    const dialogObserver = new MutationObserver(() => window.setTimeout(() => this.#changed(), 0));
    dialogObserver.observe(document.body, { childList: true });
    window.addEventListener("keydown", (e) => this.#onKey(e), true);
    // litegraph detects double-clicks from pointer timing; the native event backs it up on a busy machine.
    canvasEl.addEventListener("dblclick", (e) => {
      const [x, y] = this.canvas.convertEventToCanvasOffset(e);
      if (this.palette.isOpen || this.graph.getNodeOnPos(x, y) || this.graph.getGroupOnPos(x, y)) return;
      this.palette.open([e.clientX, e.clientY], e);
    });
    // On window, capturing: litegraph stops the event at the canvas before later listeners there see it.
    window.addEventListener("pointerup", (e) => e.target === canvasEl && this.#hintIncompatibleLink(e), true);
    canvasEl.addEventListener("dragover", (e) => e.preventDefault());
    document.addEventListener("dragover", (e) => e.preventDefault());
    document.addEventListener("drop", (e) => {
      e.preventDefault();
      const file = e.dataTransfer?.files?.[0];
      if (!file) return;
      const [x, y] = this.canvas.convertEventToCanvasOffset(e);
      const node = this.graph.getNodeOnPos(x, y) as LoomNode | null;
      const combo = node?.def?.inputs.find((i) => i.type === "COMBO" && i.options.image_upload);
      if (node && combo && file.type.startsWith("image/")) void this.#uploadInto(node, combo.name, file);
      else void this.loadFile(file);
    });
    this.#bindTooltips();
  }

  /** litegraph silently refuses a link between incompatible types; say why (runs before it handles the drop). */
  #hintIncompatibleLink(e: PointerEvent): void {
    const connector = this.canvas.linkConnector;
    const from = connector.renderLinks[0]?.fromSlot;
    if (!connector.isConnecting || !from) return;
    const [x, y] = this.canvas.convertEventToCanvasOffset(e);
    const node = this.graph.getNodeOnPos(x, y);
    if (!node) return;
    const toInput = connector.state.connectingTo === "input";
    const slot = toInput ? node.getInputOnPos([x, y]) : node.getOutputOnPos([x, y]);
    if (!slot) return;
    const [outType, inType] = toInput ? [from.type, slot.type] : [slot.type, from.type];
    if (!typesCompatible(String(outType), String(inType))) {
      toast(`Cannot connect ${String(outType)} to ${slot.name} (${String(inType)})`, "error");
    }
  }

  #onKey(e: KeyboardEvent): void {
    const target = e.target as HTMLElement;
    if (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) && target.id !== "graph-canvas") {
      if (!(e.key === "Enter" && (e.ctrlKey || e.metaKey))) return;
    }
    const mod = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    let handled = true;
    if (mod && key === "enter") void this.queue();
    else if (mod && key === "z" && !e.shiftKey) this.undo.undo();
    else if (mod && (key === "y" || (key === "z" && e.shiftKey))) this.undo.redo();
    else if (mod && key === "s") this.save();
    else if (mod && key === "o") document.getElementById("file-input")?.click();
    else if (mod && key === "m") this.#forSelected((n) => toggleMode(n, 2));
    else if (mod && key === "b") this.#forSelected((n) => toggleMode(n, 4));
    else if (mod && key === "g") this.groupSelected();
    else handled = false;
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
    }
  }

  #forSelected(action: (node: LGraphNode) => void): void {
    for (const node of Object.values(this.canvas.selected_nodes)) action(node);
    this.#changed();
  }

  groupSelected(): LGraphGroup | null {
    const items = [...this.canvas.selectedItems];
    if (!items.length) return null;
    const group = new LGraphGroup("Group");
    group.resizeTo(items, 10);
    this.graph.add(group);
    this.canvas.setDirty(true, true);
    this.#changed();
    return group;
  }

  #bindTooltips(): void {
    const tip = el("div", { class: "loom-tooltip" });
    tip.hidden = true;
    document.body.append(tip);
    let timer = 0;
    this.#canvasEl.addEventListener("pointermove", (e) => {
      tip.hidden = true;
      window.clearTimeout(timer);
      timer = window.setTimeout(() => {
        const text = this.#tooltipAt(this.canvas.graph_mouse[0], this.canvas.graph_mouse[1]);
        if (!text) return;
        tip.textContent = text;
        tip.style.left = `${e.clientX + 12}px`;
        tip.style.top = `${e.clientY + 12}px`;
        tip.hidden = false;
      }, 600);
    });
    this.#canvasEl.addEventListener("pointerleave", () => {
      window.clearTimeout(timer);
      tip.hidden = true;
    });
  }

  #tooltipAt(x: number, y: number): string | undefined {
    const node = this.graph.getNodeOnPos(x, y) as LoomNode | null;
    if (!node?.def) return undefined;
    const widget = node.getWidgetOnPos(x, y, true);
    if (widget) return widget.tooltip ?? node.def.inputs.find((i) => i.name === widget.name)?.tooltip;
    const input = node.getInputOnPos([x, y]);
    if (input) return node.def.inputs.find((i) => i.name === (input.widget?.name ?? input.name))?.tooltip;
    const output = node.getOutputOnPos([x, y]);
    if (output) return node.def.outputs[node.outputs.indexOf(output)]?.tooltip;
    if (y < node.pos[1]) return node.def.description || undefined;
    return undefined;
  }
}
