// The composition root: builds the parts (graph state and its tabs, node types, files, runs, panels, toolbar,
// input), wires them to each other, lays out the page, and publishes the extension API as `window.loom`.

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
import { dropFromLibrary, ModelLibrary, NodeLibrary } from "./library";
import { Minimap } from "./minimap";
import { Runner } from "./run";
import { Settings, SettingsDialog } from "./settings";
import { buildSidebar } from "./sidebar";
import { HistoryPanel } from "./history";
import { WorkflowsPanel } from "./workflows";
import { WorkflowTabs } from "./tabs";
import { serializeWorkflow } from "./workflow_io";
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
  readonly settings: Settings;
  readonly settingsDialog: SettingsDialog;
  readonly history: HistoryPanel;
  readonly workflows: WorkflowsPanel;
  readonly tabs: WorkflowTabs;
  readonly nodeLibrary: NodeLibrary;

  constructor(root: HTMLElement) {
    const canvasEl = el("canvas", { id: "graph-canvas", tabindex: "0" });
    const progress = el("div", { class: "bar" });
    this.queuePanel = new QueuePanel(this.api);
    this.gallery = new Gallery(this.api);
    this.state = new GraphState(canvasEl);
    const domWidgets = new DomWidgets(this.state.canvas);
    trackSubgraphTypes(this.state.graph);
    const breadcrumb = new Breadcrumb(this.state.graph, this.state.canvas);
    const minimap = new Minimap(this.state.canvas);
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
    this.settings = new Settings(this.api, this.state.canvas);
    this.settingsDialog = new SettingsDialog(this.settings);
    this.execution.showPreviews = () => this.settings.get("Loom.PreviewMethod") !== "none";
    this.tabs = new WorkflowTabs(this.state, {
      blank: () => this.files.buildDefault(),
      shown: () => this.validation.clear(),
      changed: () => this.workflows.renderCurrent(),
      confirmClose: (tab) => window.confirm(`"${tab.title}" has unsaved changes. Close it anyway?`),
    });
    this.files.opener = (load, title, saved) => this.tabs.open(load, title, saved);
    this.runner.onQueued = (id) => this.tabs.active?.jobs.add(id);
    this.execution.elsewhere = (id) => this.tabs.elsewhere(id);
    this.history = new HistoryPanel(this.api, {
      open: (workflow, title) => this.files.loadWorkflow(workflow, title),
      clientId: () => this.socket.clientId,
    });
    this.workflows = new WorkflowsPanel(this.api, {
      serialize: () => serializeWorkflow(this.state.graph),
      open: (name, workflow) => this.files.loadWorkflow(workflow, name, name),
      current: () => this.tabs.active ?? { saved: null, modified: false },
      savedAs: (name) => this.tabs.savedAs(name),
      savedChanged: (name, to) => this.tabs.savedChanged(name, to),
    });
    for (const type of ["execution_success", "execution_error", "execution_interrupted"]) {
      this.events.addEventListener(type, () => void this.history.refresh());
    }
    const runTab = el("div", { class: "run-tab" }, this.queuePanel.element, this.gallery.element);
    const nodeLibrary = (this.nodeLibrary = new NodeLibrary(() => this.nodeTypes.defs));
    const modelLibrary = new ModelLibrary(this.api);
    this.files.libraryDrop = (e) => dropFromLibrary(e, this.state, this.nodeTypes.defs);
    root.append(
      this.#toolbar(),
      el("div", { class: "global-progress" }, progress),
      this.tabs.element,
      el("main", {}, el("div", { class: "canvas-host" }, canvasEl, domWidgets.layer, breadcrumb.element, minimap.element), buildSidebar([
        { id: "run", label: "Queue", element: runTab },
        { id: "history", label: "History", element: this.history.element, shown: () => void this.history.refresh() },
        { id: "workflows", label: "Workflows", element: this.workflows.element, shown: () => void this.workflows.refresh() },
        { id: "nodes", label: "Nodes", element: nodeLibrary.element, shown: () => nodeLibrary.render() },
        { id: "models", label: "Models", element: modelLibrary.element, shown: () => void modelLibrary.refresh() },
      ])),
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
    await Promise.all([this.nodeTypes.fetch(), this.settings.load()]);
    const failed = await this.extensions.load(this.api);
    if (failed.length) toast(`${failed.length} extension(s) failed to load`, "error");
    this.extensions.call("init", this.compat.app);
    this.nodeTypes.register();
    this.nodeLibrary.render();
    this.tabs.restore();
    this.#bindInput();
    this.socket.connect();
    this.extensions.call("setup", this);
    await Promise.all([this.queuePanel.refresh(), this.gallery.loadHistory(), this.history.refresh()]);
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
        exportApi: () => files.exportApi(runner.prompt()),
        settings: () => this.settingsDialog.show(),
      },
      { batch: runner.batch, status: runner.status, filePicker: files.picker },
    );
  }

  #bindInput(): void {
    trackChanges(this.state);
    bindShortcuts(
      this.state,
      {
      queue: () => void this.runner.queue(),
      save: () => void this.files.save(),
      open: () => this.files.openPicker(),
      search: () => {
        const r = this.state.canvasEl.getBoundingClientRect();
        this.search.palette.open([r.left + r.width / 3, r.top + 80]);
      },
      escape: () => {
        LiteGraph.closeAllContextMenus(window);
        this.search.palette.close();
        this.files.examples.close();
        this.settingsDialog.close();
        closeOverlays();
      },
      },
      () => this.settings.keys(),
    );
    this.search.bindDoubleClick();
    bindLinkHints(this.state);
    this.files.bindDrop();
    bindTooltips(this.state);
  }
}
