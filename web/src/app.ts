// The composition root: builds the parts (graph state, node types, files, runs, panels, toolbar, input),
// wires them to each other, lays out the page, and publishes the extension API as `window.loom`.

import { LiteGraph } from "@comfyorg/litegraph";
import { Api } from "./api";
import { ValidationPanel } from "./errors";
import { ExecutionView } from "./execution";
import { compatObjects, type CompatApi, type CompatApp, type LoomApp } from "./extension_api";
import { Extensions } from "./extensions";
import { Files } from "./files";
import { GraphState } from "./graph_state";
import { bindLinkHints, bindShortcuts, trackChanges } from "./input";
import { NodeTypes } from "./node_types";
import { Gallery, QueuePanel } from "./panels";
import { Runner } from "./run";
import { CanvasSearch } from "./search";
import { Breadcrumb, trackSubgraphTypes } from "./subgraphs";
import { DomWidgets } from "./dom_widgets";
import { buildToolbar } from "./toolbar";
import { bindTooltips } from "./tooltips";
import { closeOverlays, el, openLightbox, toast } from "./ui";

export class App implements LoomApp {
  readonly api = new Api();
  readonly extensions = new Extensions();
  readonly timings: Record<string, number> = {};
  readonly events = new EventTarget();
  readonly state: GraphState;
  readonly nodeTypes: NodeTypes;
  readonly files: Files;
  readonly runner: Runner;
  readonly search: CanvasSearch;
  readonly queuePanel: QueuePanel;
  readonly gallery: Gallery;
  readonly execution: ExecutionView;
  readonly validation: ValidationPanel;
  readonly compat: { app: CompatApp; api: CompatApi };

  constructor(root: HTMLElement) {
    const canvasEl = el("canvas", { id: "graph-canvas", tabindex: "0" });
    const progress = el("div", { class: "bar" });
    this.queuePanel = new QueuePanel(this.api);
    this.gallery = new Gallery(this.api);
    this.state = new GraphState(canvasEl);
    const domWidgets = new DomWidgets(this.state.canvas);
    trackSubgraphTypes(this.state.graph);
    const breadcrumb = new Breadcrumb(this.state.graph, this.state.canvas);
    this.compat = compatObjects(this, (e) => this.extensions.register(e));
    this.nodeTypes = new NodeTypes(
      this.api,
      this.state,
      {
        uploadImage: (file) => this.files.uploadImage(file),
        inputImageUrl: (name) => {
          const slash = name.lastIndexOf("/");
          return this.api.viewUrl({ filename: name.slice(slash + 1), subfolder: name.slice(0, Math.max(slash, 0)), type: "input" });
        },
        nodeCreated: (node) => this.extensions.call("nodeCreated", node, this.compat.app),
        openImage: (urls) => openLightbox(urls),
        beforeRegister: (cls, info) => this.extensions.call("beforeRegisterNodeDef", cls, info, this.compat.app),
      },
      this.timings,
    );
    this.validation = new ValidationPanel(this.state.graph, this.state.canvas);
    this.nodeTypes.onModelsReplaced = () => this.validation.clear();
    this.execution = new ExecutionView(this.state.graph, this.state.canvas, this.api, this.gallery, progress);
    this.files = new Files(this.api, this.state, this.nodeTypes, this.validation);
    this.runner = new Runner({
      api: this.api,
      state: this.state,
      nodeTypes: this.nodeTypes,
      validation: this.validation,
      execution: this.execution,
      queuePanel: this.queuePanel,
      gallery: this.gallery,
      events: this.events,
    });
    this.search = new CanvasSearch(this.state, () => this.nodeTypes.defs);
    root.append(
      this.#toolbar(),
      el("div", { class: "global-progress" }, progress),
      el("main", {}, el("div", { class: "canvas-host" }, canvasEl, domWidgets.layer, breadcrumb.element), el("aside", {}, this.queuePanel.element, this.gallery.element)),
      this.validation.element,
      this.nodeTypes.missingModels.element,
    );
  }

  get graph() {
    return this.state.graph;
  }

  get canvas() {
    return this.state.canvas;
  }

  get socket() {
    return this.runner.socket;
  }

  get runningNode(): string | null {
    return this.execution.runningNode;
  }

  prompt() {
    return this.runner.prompt();
  }

  queue(batch?: number): Promise<string[]> {
    return this.runner.queue(batch);
  }

  loadWorkflow(data: unknown): boolean {
    return this.files.loadWorkflow(data);
  }

  fitView(options?: { readable?: boolean }): void {
    this.state.fitView(options);
  }

  async start(): Promise<void> {
    this.timings.start = performance.now();
    window.loom = {
      app: this,
      LiteGraph,
      registerExtension: (e) => this.extensions.register(e),
      compat: this.compat,
    };
    this.state.resize();
    window.addEventListener("resize", () => this.state.resize());
    await this.nodeTypes.fetch();
    const failed = await this.extensions.load(this.api);
    if (failed.length) toast(`${failed.length} extension(s) failed to load`, "error");
    this.extensions.call("init", this.compat.app);
    this.nodeTypes.register();
    this.files.loadInitial();
    this.state.startHistory();
    this.#bindInput();
    this.socket.connect();
    this.extensions.call("setup", this);
    await Promise.all([this.queuePanel.refresh(), this.gallery.loadHistory()]);
    this.timings.ready = performance.now();
  }

  #toolbar(): HTMLElement {
    const { state, files, runner } = this;
    return buildToolbar(
      {
        queue: () => void runner.queue(),
        interrupt: () => void this.api.interrupt(),
        addNode: () => this.search.palette.open([200, 120]),
        save: () => void files.save(),
        load: () => files.openPicker(),
        examples: () => void files.showExamples(),
        loadDefault: () => files.loadDefault(),
        clear: () => state.replace(() => state.graph.clear()),
        undo: () => state.undo?.undo(),
        redo: () => state.undo?.redo(),
        refreshModels: () => void this.nodeTypes.refreshModels(),
      },
      { batch: runner.batch, status: runner.status, filePicker: files.picker },
    );
  }

  #bindInput(): void {
    trackChanges(this.state);
    bindShortcuts(this.state, {
      queue: () => void this.runner.queue(),
      save: () => void this.files.save(),
      open: () => this.files.openPicker(),
      escape: () => {
        LiteGraph.closeAllContextMenus(window);
        this.search.palette.close();
        this.files.examples.close();
        closeOverlays();
      },
    });
    this.search.bindDoubleClick();
    bindLinkHints(this.state);
    this.files.bindDrop();
    bindTooltips(this.state);
  }
}
