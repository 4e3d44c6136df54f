// HTTP client for the Loom server (DESIGN.md section 6). Every call goes through the `/api` prefix so the
// canvas also works behind a proxy that only forwards /api; the auth token from `?token=` rides along.

import type { NodeTiming } from "./timings";

export type InputSpec = [string | string[], Record<string, unknown>?];

export interface NodeInfo {
  name: string;
  display_name?: string;
  description?: string;
  category?: string;
  input: {
    required?: Record<string, InputSpec>;
    optional?: Record<string, InputSpec>;
    hidden?: Record<string, unknown>;
  };
  input_order?: { required?: string[]; optional?: string[] };
  output: (string | string[])[];
  output_is_list?: boolean[];
  output_name?: string[];
  output_tooltips?: string[];
  output_node?: boolean;
  python_module?: string;
  deprecated?: boolean;
  experimental?: boolean;
}

export type ObjectInfo = Record<string, NodeInfo>;

export interface ApiInput {
  [name: string]: unknown;
}

export interface ApiNode {
  class_type: string;
  inputs: ApiInput;
  _meta?: { title: string };
}

export type ApiPrompt = Record<string, ApiNode>;

export interface ImageRef {
  filename: string;
  subfolder?: string;
  type?: string;
}

/** One model file of the server's index (`GET /models/index`): its hash once the background hasher reached it. */
export interface IndexedModel {
  folder: string;
  name: string;
  size: number;
  modified: number;
  sha256: string | null;
  autov2: string | null;
}

/** A missing model name, and what the server proposes for it, best first (`POST /models/resolve`). */
export interface ModelQuery {
  name: string;
  choices: string[];
  folder?: string;
  hash?: string;
}
export interface ModelProposal {
  name: string;
  rule: "hash" | "separators" | "subfolder" | "extension" | "demo";
}

export type QueueItem = [number, string, ApiPrompt, Record<string, unknown>, string[]];

export interface QueueState {
  queue_running: QueueItem[];
  queue_pending: QueueItem[];
}

export interface HistoryEntry {
  prompt: QueueItem;
  outputs: Record<string, { images?: ImageRef[] } & Record<string, unknown>>;
  status?: { status_str: string; completed: boolean; messages?: [string, unknown][] };
  /** Epoch milliseconds of the job's steps (Loom's addition to the history entry). */
  timings?: { queued?: number; started?: number; finished?: number; nodes?: Record<string, NodeTiming> };
}

export interface NodeErrorDetail {
  type: string;
  message: string;
  details?: string;
  extra_info?: { input_name?: string; [k: string]: unknown };
}

export interface NodeErrors {
  [nodeId: string]: { errors: NodeErrorDetail[]; dependent_outputs?: string[]; class_type?: string };
}

export interface TemplateInfo {
  name: string;
  title: string;
  description: string;
}

export interface TemplateGroup {
  moduleName: string;
  title: string;
  templates: TemplateInfo[];
}

/** Raised for a non-2xx answer; `body` holds the server's JSON (e.g. the 400 validation body). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: any,
  ) {
    super(body?.error?.message ?? `HTTP ${status}`);
  }
}

export class Api {
  readonly token: string | null;
  readonly base: string;

  constructor(location: Location = window.location) {
    this.token = new URLSearchParams(location.search).get("token");
    const path = location.pathname.replace(/[^/]*$/, "");
    this.base = `${path}api`;
  }

  /** URL for a GET route, with the token as a query parameter (for <img>, <script> and WebSocket URLs). */
  url(route: string, params: Record<string, string> = {}): string {
    const query = new URLSearchParams(params);
    if (this.token) query.set("token", this.token);
    const qs = query.toString();
    return `${this.base}${route}${qs ? `?${qs}` : ""}`;
  }

  wsUrl(clientId: string): string {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}${this.url("/ws", { clientId })}`;
  }

  async fetch(route: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.token) headers.set("Authorization", `Bearer ${this.token}`);
    return fetch(`${this.base}${route}`, { ...init, headers });
  }

  async json<T>(route: string, init: RequestInit = {}): Promise<T> {
    const res = await this.fetch(route, init);
    const text = await res.text();
    let body: any = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = { error: { message: text || res.statusText } };
    }
    if (!res.ok) throw new ApiError(res.status, body);
    return body as T;
  }

  post<T>(route: string, body: unknown): Promise<T> {
    return this.json<T>(route, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  objectInfo(): Promise<ObjectInfo> {
    return this.json("/object_info");
  }

  queuePrompt(body: {
    prompt: ApiPrompt;
    client_id: string;
    extra_data: Record<string, unknown>;
    front?: boolean;
  }): Promise<{ prompt_id: string; number: number; node_errors: NodeErrors }> {
    return this.post("/prompt", body);
  }

  queue(): Promise<QueueState> {
    return this.json("/queue");
  }

  deleteFromQueue(ids: string[]): Promise<unknown> {
    return this.post("/queue", { delete: ids });
  }

  interrupt(promptId?: string): Promise<unknown> {
    return this.post("/interrupt", promptId ? { prompt_id: promptId } : {});
  }

  history(maxItems = 64): Promise<Record<string, HistoryEntry>> {
    return this.json(`/history?max_items=${maxItems}`);
  }

  /** One job's history entry, or null while it has none (still queued or running). */
  async historyEntry(promptId: string): Promise<HistoryEntry | null> {
    const found = await this.json<Record<string, HistoryEntry>>(`/history/${encodeURIComponent(promptId)}`);
    return found[promptId] ?? null;
  }

  extensions(): Promise<string[]> {
    return this.json("/extensions");
  }

  /** The server's example workflows, grouped (`/templates/index.json`), then one by name. */
  templates(): Promise<TemplateGroup[]> {
    return this.json("/templates/index.json");
  }

  template(name: string): Promise<unknown> {
    return this.json(`/templates/${encodeURIComponent(name)}.json`);
  }

  /**
   * The files under a folder of the user's data, recursively (`{path, size, modified}`, paths relative to it).
   * A folder not made yet answers 404, as the reference does: that is an empty folder, not an error.
   */
  async listUserData(dir: string): Promise<{ path: string; size: number; modified: number }[]> {
    try {
      return await this.json(`/userdata?dir=${encodeURIComponent(dir)}&recurse=true&full_info=true`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return [];
      throw e;
    }
  }

  modelIndex(): Promise<{ files: IndexedModel[]; pending: number }> {
    return this.json("/models/index");
  }

  resolveModels(models: ModelQuery[]): Promise<{ models: { name: string; proposals: ModelProposal[] }[] }> {
    return this.post("/models/resolve", { models });
  }

  viewUrl(image: ImageRef, extra: Record<string, string> = {}): string {
    return this.url("/view", {
      filename: image.filename,
      subfolder: image.subfolder ?? "",
      type: image.type ?? "output",
      ...extra,
    });
  }
}
