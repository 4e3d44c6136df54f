// The side panels: the queue (running and pending jobs, with cancel and interrupt) and the gallery of
// output images from this session and the server's history (click opens full size through /view).

import type { Api, ImageRef, QueueItem, QueueState } from "./api";
import { el, openLightbox, toast } from "./ui";

function describe(item: QueueItem): string {
  const prompt = item[2] ?? {};
  const nodes = Object.values(prompt);
  const outputs = item[4]?.length ?? 0;
  return `#${item[0]} · ${nodes.length} nodes${outputs ? ` · ${outputs} outputs` : ""}`;
}

export class QueuePanel {
  readonly element: HTMLElement;
  readonly #list: HTMLElement;
  #state: QueueState = { queue_running: [], queue_pending: [] };

  constructor(private readonly api: Api) {
    this.#list = el("div", { class: "queue-list" });
    const clear = el("button", { text: "Clear pending", title: "Cancel every pending job" });
    clear.onclick = () => void this.#run(() => this.api.post("/queue", { clear: true }));
    this.element = el("section", { class: "loom-panel queue-panel" }, el("h2", { text: "Queue" }), clear, this.#list);
  }

  get state(): QueueState {
    return this.#state;
  }

  async refresh(): Promise<void> {
    try {
      this.#state = await this.api.queue();
    } catch {
      return;
    }
    this.#render();
  }

  async #run(action: () => Promise<unknown>): Promise<void> {
    try {
      await action();
    } catch (e) {
      toast(`Queue action failed: ${(e as Error).message}`, "error");
    }
    await this.refresh();
  }

  #render(): void {
    const rows: HTMLElement[] = [];
    for (const item of this.#state.queue_running) {
      const stop = el("button", { class: "interrupt", text: "Interrupt" });
      stop.onclick = () => void this.#run(() => this.api.interrupt(item[1]));
      rows.push(el("div", { class: "queue-item running", "data-prompt-id": item[1] }, el("span", { text: `▶ running ${describe(item)}` }), stop));
    }
    for (const item of this.#state.queue_pending) {
      const cancel = el("button", { class: "cancel", text: "Cancel" });
      cancel.onclick = () => void this.#run(() => this.api.deleteFromQueue([item[1]]));
      rows.push(el("div", { class: "queue-item pending", "data-prompt-id": item[1] }, el("span", { text: `pending ${describe(item)}` }), cancel));
    }
    if (!rows.length) rows.push(el("div", { class: "empty", text: "Nothing queued" }));
    this.#list.replaceChildren(...rows);
  }
}

export class Gallery {
  readonly element: HTMLElement;
  readonly #grid: HTMLElement;
  readonly #seen = new Set<string>();

  constructor(private readonly api: Api) {
    this.#grid = el("div", { class: "gallery-grid" });
    this.element = el("section", { class: "loom-panel gallery-panel" }, el("h2", { text: "Images" }), this.#grid);
  }

  /** Adds one job's images (a batch the viewer steps through), newest first; a file already shown is skipped. */
  add(images: ImageRef[]): void {
    const batch = images.map((image) => this.api.viewUrl(image));
    images.forEach((image, i) => {
      const key = `${image.type}/${image.subfolder}/${image.filename}`;
      if (this.#seen.has(key)) return;
      this.#seen.add(key);
      const thumb = el("img", { src: batch[i], alt: image.filename, title: image.filename, loading: "lazy" });
      thumb.onclick = () => openLightbox(batch, i);
      this.#grid.prepend(thumb);
    });
  }

  async loadHistory(): Promise<void> {
    try {
      const history = await this.api.history(32);
      for (const entry of Object.values(history)) {
        for (const output of Object.values(entry.outputs ?? {})) this.add(output.images ?? []);
      }
    } catch {
      // History is a convenience; a server without it still runs workflows.
    }
  }
}
