// WebSocket client: typed JSON events and binary preview frames, reconnecting on its own with backoff so a
// server restart is invisible apart from a banner; `onReconnect` lets the app resync queue state.

import type { Api } from "./api";

export interface ServerMessage {
  type: string;
  data: any;
}

export type PreviewFormat = "image/jpeg" | "image/png";

export interface SocketHandlers {
  message(msg: ServerMessage): void;
  preview(blob: Blob): void;
  connection(state: "open" | "closed", reconnected: boolean): void;
}

const PREVIEW_EVENT = 1;
const FORMATS: Record<number, PreviewFormat> = { 1: "image/jpeg", 2: "image/png" };

/** Splits a binary frame: 4-byte BE event type, 4-byte BE image format, then the image bytes. */
export function parseBinaryFrame(buffer: ArrayBuffer): Blob | null {
  if (buffer.byteLength < 8) return null;
  const view = new DataView(buffer);
  if (view.getUint32(0) !== PREVIEW_EVENT) return null;
  const mime = FORMATS[view.getUint32(4)];
  if (!mime) return null;
  return new Blob([buffer.slice(8)], { type: mime });
}

export class Socket {
  clientId: string;
  #ws: WebSocket | null = null;
  #attempt = 0;
  #everOpened = false;
  #closed = false;

  constructor(
    private readonly api: Api,
    private readonly handlers: SocketHandlers,
    clientId: string,
  ) {
    this.clientId = clientId;
  }

  get connected(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN;
  }

  connect(): void {
    const ws = new WebSocket(this.api.wsUrl(this.clientId));
    ws.binaryType = "arraybuffer";
    this.#ws = ws;
    ws.onopen = () => {
      const reconnected = this.#everOpened;
      this.#everOpened = true;
      this.#attempt = 0;
      ws.send(JSON.stringify({ type: "feature_flags", data: { supports_preview_metadata: false } }));
      this.handlers.connection("open", reconnected);
    };
    ws.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) {
        const blob = parseBinaryFrame(event.data);
        if (blob) this.handlers.preview(blob);
        return;
      }
      let msg: ServerMessage;
      try {
        msg = JSON.parse(event.data as string);
      } catch {
        return;
      }
      if (msg.type === "status" && msg.data?.sid) this.clientId = msg.data.sid;
      this.handlers.message(msg);
    };
    ws.onclose = () => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      this.handlers.connection("closed", false);
      if (!this.#closed) this.#scheduleReconnect();
    };
    ws.onerror = () => ws.close();
  }

  #scheduleReconnect(): void {
    const delay = Math.min(5000, 250 * 2 ** this.#attempt++);
    window.setTimeout(() => this.connect(), delay);
  }

  close(): void {
    this.#closed = true;
    this.#ws?.close();
  }
}
