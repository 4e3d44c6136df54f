// Running workflows: queueing the canvas (batch count, "control after generate" between runs), a refused
// prompt shown as validation errors (and missing models offered), and the server's WebSocket events fed to
// the job display, the queue panel and the connection status.

import { type Api, ApiError, type NodeErrors } from "./api";
import { graphToPrompt } from "./convert";
import type { ValidationPanel } from "./errors";
import type { ExecutionView } from "./execution";
import type { GraphState } from "./graph_state";
import { modelErrorFilter } from "./missing_models";
import type { NodeTypes } from "./node_types";
import { PrimitiveNode } from "./nodes";
import type { Gallery, QueuePanel } from "./panels";
import { CONTROL_WIDGET, nextControlledValue } from "./schema";
import { type ServerMessage, Socket } from "./socket";
import { el, toast } from "./ui";
import { serializeWorkflow } from "./workflow_io";

const CLIENT_KEY = "loom.clientId";

/** This tab's client id: kept for the session so a reload still receives its jobs' events. */
function clientId(): string {
  let id = sessionStorage.getItem(CLIENT_KEY);
  if (!id) {
    id = crypto.randomUUID?.() ?? `${Date.now().toString(16)}${Math.random().toString(16).slice(2)}`;
    sessionStorage.setItem(CLIENT_KEY, id);
  }
  return id;
}

export interface RunnerParts {
  api: Api;
  state: GraphState;
  nodeTypes: NodeTypes;
  validation: ValidationPanel;
  execution: ExecutionView;
  queuePanel: QueuePanel;
  gallery: Gallery;
  /** Server messages are re-dispatched here as DOM events (type = message type, detail = data). */
  events: EventTarget;
}

export class Runner {
  readonly socket: Socket;
  /** The toolbar's batch count. */
  readonly batch = el("input", { type: "number", min: "1", max: "100", value: "1", id: "batch-count", title: "Batch count" });
  /** The toolbar's connection and queue status. */
  readonly status = el("span", { class: "status", text: "connecting…" });
  /** Told each job queued from the canvas (the tabs note which workflow it belongs to). */
  onQueued: (promptId: string) => void = () => {};

  constructor(private readonly parts: RunnerParts) {
    this.socket = new Socket(
      parts.api,
      {
        message: (msg) => this.#onMessage(msg),
        preview: (blob) => parts.execution.preview(blob),
        connection: (state, reconnected) => this.#onConnection(state, reconnected),
      },
      clientId(),
    );
  }

  /** The current canvas in the API format, as it would be queued. */
  prompt(): ReturnType<typeof graphToPrompt> {
    return graphToPrompt(this.parts.state.graph, this.parts.nodeTypes.defs);
  }

  async queue(batch = Number(this.batch.value) || 1): Promise<string[]> {
    const { api, state, validation, queuePanel } = this.parts;
    const ids: string[] = [];
    validation.clear();
    for (let i = 0; i < Math.max(1, batch); i++) {
      const prompt = this.prompt();
      const workflow = serializeWorkflow(state.graph);
      try {
        const res = await api.queuePrompt({
          prompt,
          client_id: this.socket.clientId,
          extra_data: { extra_pnginfo: { workflow } },
        });
        ids.push(res.prompt_id);
        this.onQueued(res.prompt_id);
      } catch (e) {
        this.#onQueueError(e);
        break;
      }
      this.#applyControlAfterGenerate();
    }
    if (ids.length) toast(ids.length > 1 ? `Queued ${ids.length} runs` : "Queued");
    await queuePanel.refresh();
    return ids;
  }

  #applyControlAfterGenerate(): void {
    const { state, nodeTypes } = this.parts;
    for (const node of [state.graph, ...state.graph.subgraphs.values()].flatMap((g) => g._nodes)) {
      const inputs = node instanceof PrimitiveNode ? [node.adopted] : nodeTypes.defs.get(node.type)?.inputs;
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
    state.canvas.setDirty(true, false);
    state.changed();
  }

  #onQueueError(e: unknown): void {
    if (e instanceof ApiError && e.body) {
      const body = e.body;
      this.showValidationErrors(body.error?.message ?? "Invalid workflow", body.node_errors ?? {}, body.error?.details);
      const only = modelErrorFilter(body.node_errors ?? {});
      if (only) void this.parts.nodeTypes.checkModels(only);
    } else {
      toast(`Could not queue: ${(e as Error).message}`, "error", 8000);
    }
  }

  showValidationErrors(message: string, nodeErrors: NodeErrors, details?: string): void {
    this.parts.validation.show(message, nodeErrors, details);
  }

  #onConnection(state: "open" | "closed", reconnected: boolean): void {
    this.status.textContent = state === "open" ? "connected" : "reconnecting…";
    this.status.className = `status ${state}`;
    if (state === "open" && reconnected) {
      toast("Reconnected to the server");
      void this.parts.queuePanel.refresh();
      void this.parts.gallery.loadHistory();
    }
    if (state === "closed") this.parts.execution.setRunning(null);
  }

  #onMessage(msg: ServerMessage): void {
    const data = msg.data ?? {};
    this.parts.events.dispatchEvent(new CustomEvent(msg.type, { detail: data }));
    if (msg.type === "status") {
      const remaining = data.status?.exec_info?.queue_remaining ?? 0;
      this.status.textContent = `connected · queue ${remaining}`;
      void this.parts.queuePanel.refresh();
    } else {
      this.parts.execution.handle(msg.type, data);
      if (msg.type === "executing" && data.node == null) void this.parts.queuePanel.refresh();
    }
  }
}
