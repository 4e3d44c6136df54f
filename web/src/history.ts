// The history sidebar: the server's past jobs, newest first, each with its status, how long it ran (and each
// node of it), and its images; a job's workflow can be opened again (the canvas it was queued from, else its API prompt), queued
// again as it was, or deleted from the history.

import type { Api, HistoryEntry } from "./api";
import { formatDuration, jobNodeTimes } from "./timings";
import { el, openLightbox, toast } from "./ui";

const SHOWN = 50;

export interface HistoryActions {
  /** Opens a past job's workflow (in a tab named `title`). */
  open(workflow: unknown, title: string): void;
  /** The client id re-queued jobs report to. */
  clientId(): string;
}

function duration(entry: HistoryEntry): string {
  const timings = entry.timings;
  return timings?.started && timings.finished ? formatDuration(timings.finished - timings.started) : "";
}

/** Each node's run time in the job, longest first, folded under its summary. */
function nodeTimes(entry: HistoryEntry): HTMLElement | null {
  const rows = jobNodeTimes(entry.timings?.nodes ?? {});
  if (!rows.length) return null;
  const prompt = entry.prompt[2];
  const items = rows.map(([id, time]) => {
    const node = prompt[id];
    const name = node?._meta?.title ?? node?.class_type ?? id;
    return el(
      "li",
      { "data-node-id": id },
      el("span", { class: "node", text: `${name} #${id}` }),
      el("span", { class: "time", text: time === "cached" ? "cached" : formatDuration(time) }),
    );
  });
  return el("details", { class: "node-times" }, el("summary", { text: "Node times" }), el("ul", {}, ...items));
}

function finishedAt(entry: HistoryEntry): number {
  return entry.timings?.finished ?? 0;
}

/** The canvas the job was queued from (kept in its extra data), else its API prompt. */
function workflowOf(entry: HistoryEntry): unknown {
  const extra = entry.prompt[3] as { extra_pnginfo?: { workflow?: unknown } } | undefined;
  return extra?.extra_pnginfo?.workflow ?? entry.prompt[2];
}

export class HistoryPanel {
  readonly element: HTMLElement;
  readonly #list = el("div", { class: "history-list" });

  constructor(
    private readonly api: Api,
    private readonly actions: HistoryActions,
  ) {
    const refresh = el("button", { text: "Refresh", title: "Read the history again" });
    refresh.onclick = () => void this.refresh();
    this.element = el("section", { class: "loom-panel history-panel" }, el("h2", { text: "History" }), refresh, this.#list);
  }

  async refresh(): Promise<void> {
    let history: Record<string, HistoryEntry>;
    try {
      history = await this.api.history(SHOWN);
    } catch {
      return;
    }
    const entries = Object.entries(history).sort((a, b) => finishedAt(b[1]) - finishedAt(a[1]) || b[1].prompt[0] - a[1].prompt[0]);
    this.#list.replaceChildren(...entries.map(([id, entry]) => this.#row(id, entry)));
    if (!entries.length) this.#list.append(el("div", { class: "empty", text: "No past jobs" }));
  }

  #row(id: string, entry: HistoryEntry): HTMLElement {
    const status = entry.status?.status_str ?? (entry.status?.completed ? "success" : "unknown");
    const images = Object.values(entry.outputs ?? {}).flatMap((o) => o.images ?? []);
    const urls = images.map((image) => this.api.viewUrl(image));
    const thumbs = urls.slice(0, 4).map((url, i) => {
      const img = el("img", { src: url, alt: "output", loading: "lazy" });
      img.onclick = () => openLightbox(urls, i);
      return img;
    });
    const open = el("button", { class: "open", text: "Open", title: "Open this job's workflow on the canvas" });
    open.onclick = () => this.actions.open(workflowOf(entry), `Job ${entry.prompt[0]}`);
    const requeue = el("button", { class: "requeue", text: "Re-queue", title: "Queue this job again as it was" });
    requeue.onclick = () => void this.#requeue(entry);
    const remove = el("button", { class: "delete", text: "Delete", title: "Delete from the history" });
    remove.onclick = () => void this.#delete(id);
    const finished = finishedAt(entry);
    const when = finished ? new Date(finished).toLocaleTimeString() : "";
    return el(
      "div",
      { class: `history-item ${status}`, "data-prompt-id": id },
      el("div", { class: "meta" }, el("span", { class: "status", text: status }), el("span", { class: "when", text: [when, duration(entry)].filter(Boolean).join(" · ") })),
      el("div", { class: "thumbs" }, ...thumbs),
      ...[nodeTimes(entry)].filter((e): e is HTMLElement => e !== null),
      el("div", { class: "buttons" }, open, requeue, remove),
    );
  }

  async #requeue(entry: HistoryEntry): Promise<void> {
    try {
      await this.api.queuePrompt({ prompt: entry.prompt[2], client_id: this.actions.clientId(), extra_data: entry.prompt[3] ?? {} });
      toast("Queued again");
    } catch (e) {
      toast(`Could not queue: ${(e as Error).message}`, "error");
    }
  }

  async #delete(id: string): Promise<void> {
    try {
      await this.api.post("/history", { delete: [id] });
    } catch (e) {
      toast(`Could not delete: ${(e as Error).message}`, "error");
    }
    await this.refresh();
  }
}
