// The one global, `window.loom`: the extension API node packs' front-end scripts use (documented in
// web/README.md). Everything else in the canvas is module-scoped; new public surface is added here, typed.

import type { LGraph, LGraphCanvas, LiteGraph } from "@comfyorg/litegraph";
import type { Api, ApiPrompt } from "./api";
import type { Extension } from "./extensions";
import type { QueuePanel } from "./panels";
import type { Socket } from "./socket";

/** What `window.loom.app` offers: the canvas and the actions of the toolbar, for extensions and tests. */
export interface LoomApp {
  readonly api: Api;
  readonly graph: LGraph;
  readonly canvas: LGraphCanvas;
  readonly socket: Socket;
  readonly queuePanel: QueuePanel;
  /** Server messages as DOM events (type = message type, detail = data). */
  readonly events: EventTarget;
  /** performance.now() marks: `start`, `ready` (schema fetched, first workflow drawn), `modelsChecked`. */
  readonly timings: Record<string, number>;
  /** Id of the node running now (null when idle). */
  readonly runningNode: string | null;
  /** The current canvas in the API format, as it would be queued. */
  prompt(): ApiPrompt;
  /** Queues the canvas `batch` times; resolves to the prompt ids accepted. */
  queue(batch?: number): Promise<string[]>;
  /** Opens a workflow (canvas or API format) in a tab (the active one when it is an untouched unsaved workflow);
   * false when it is neither. */
  loadWorkflow(data: unknown): boolean;
  /** Zooms to show the workflow; `readable: false` allows zooming out below the scale where text is drawn. */
  fitView(options?: { readable?: boolean }): void;
}

/** The ecosystem's `scripts/api.js` export. */
export interface CompatApi {
  addEventListener(type: string, listener: EventListener): void;
  removeEventListener(type: string, listener: EventListener): void;
  fetchApi(route: string, init?: RequestInit): Promise<Response>;
  apiURL(route: string): string;
  readonly clientId: string;
}

/** The ecosystem's `scripts/app.js` export. */
export interface CompatApp {
  api: CompatApi;
  registerExtension(extension: Extension): void;
  readonly graph: LGraph;
  readonly canvas: LGraphCanvas;
  queuePrompt(number: number, batch?: number): Promise<string[]>;
  graphToPrompt(): { output: ApiPrompt; workflow: unknown };
  loadGraphData(data: unknown): boolean;
}

export interface LoomGlobal {
  app: LoomApp;
  LiteGraph: typeof LiteGraph;
  registerExtension(extension: Extension): void;
  /** What `scripts/app.js` and `scripts/api.js` re-export for extensions written for the ecosystem's canvas. */
  compat: { app: CompatApp; api: CompatApi };
}

declare global {
  interface Window {
    loom: LoomGlobal;
  }
}

/** The objects extensions written for the ecosystem's canvas import from scripts/app.js and scripts/api.js. */
export function compatObjects(app: LoomApp, register: (extension: Extension) => void): { app: CompatApp; api: CompatApi } {
  const api: CompatApi = {
    addEventListener: (type, listener) => app.events.addEventListener(type, listener),
    removeEventListener: (type, listener) => app.events.removeEventListener(type, listener),
    fetchApi: (route, init) => app.api.fetch(route, init),
    apiURL: (route) => `${app.api.base}${route}`,
    get clientId() {
      return app.socket.clientId;
    },
  };
  const compatApp: CompatApp = {
    api,
    registerExtension: register,
    get graph() {
      return app.graph;
    },
    get canvas() {
      return app.canvas;
    },
    queuePrompt: (_number, batch = 1) => app.queue(batch),
    graphToPrompt: () => ({ output: app.prompt(), workflow: app.graph.serialize() }),
    loadGraphData: (data) => app.loadWorkflow(data),
  };
  return { app: compatApp, api };
}
