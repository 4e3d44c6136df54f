// Shows a job as it runs: the running node outlined with its progress bar, the global progress bar and the tab
// title ("[42%] Loom"), live previews (binary frames) on the running node, cached nodes badged and, once the job
// is over, each node's run time; output images on their nodes and in the gallery, runtime errors in a dialog and
// on the failing node.

import type { LGraph, LGraphCanvas } from "@comfyorg/litegraph";
import type { Api, ImageRef } from "./api";
import { fitImages, type LoomNode, resetRunState } from "./nodes";
import type { Gallery } from "./panels";
import { nodePath } from "./node_path";
import { applyRunTimes, clearRunTimes, markCached } from "./timings";
import { type RuntimeError, showRuntimeError, toast } from "./ui";

/** The tab's title when idle; a running job's progress goes in front of it ("[42%] Loom"). */
const TITLE = "Loom";

export class ExecutionView {
  runningNode: string | null = null;
  /** The job whose events came last: live previews carry no job id, and belong to this one. */
  #currentJob: string | undefined;

  constructor(
    private readonly graph: LGraph,
    private readonly canvas: LGraphCanvas,
    private readonly api: Api,
    private readonly gallery: Gallery,
    private readonly progressBar: HTMLElement,
  ) {}

  /** A node by event id; expanded nodes ("12:5") are shown on the canvas node they came from. */
  node(id: unknown): LoomNode | null {
    if (id == null) return null;
    const key = String(id).split(":")[0];
    return (this.graph.getNodeById(key) ?? this.graph.getNodeById(Number(key))) as LoomNode | null;
  }

  setRunning(id: string | null): void {
    const previous = this.node(this.runningNode);
    if (previous) {
      (previous as any).loomRunning = false;
      previous.progress = undefined;
    }
    this.runningNode = id;
    const node = this.node(id);
    if (node) (node as any).loomRunning = true;
    if (!id) {
      this.progressBar.style.width = "0";
      document.title = TITLE;
    }
    this.canvas.setDirty(true, true);
  }

  /** Whether a job belongs to a workflow not shown now (queued from another tab). */
  elsewhere: (promptId: string | undefined) => boolean = () => false;

  /** Applies one job event. The server sends job events only to the client that queued the job, and they
   * may overtake the answer to POST /prompt, so every job event received is shown (on the nodes, unless the
   * job is known to be another tab's). */
  handle(type: string, data: any): void {
    if (data?.prompt_id !== undefined) this.#currentJob = data.prompt_id;
    if (this.elsewhere(data?.prompt_id)) {
      this.#background(type, data);
      return;
    }
    switch (type) {
      case "execution_start":
        for (const node of this.graph._nodes) resetRunState(node, true);
        clearRunTimes(this.graph);
        this.progressBar.style.width = "0";
        break;
      case "execution_cached":
        for (const id of data.nodes ?? []) {
          const node = this.node(id);
          if (node?.loom) node.loom.cached = true;
        }
        markCached(this.graph, (data.nodes ?? []).map(String));
        break;
      case "executing":
        this.setRunning(data.node ?? null);
        break;
      case "progress": {
        const fraction = data.max ? data.value / data.max : 0;
        const node = this.node(data.node ?? this.runningNode);
        if (node) node.progress = fraction;
        this.#progress(fraction);
        break;
      }
      case "executed":
        this.#showOutput(this.node(data.display_node ?? data.node), data.output?.images ?? []);
        break;
      case "execution_success":
        this.setRunning(null);
        void this.#showRunTimes(data.prompt_id);
        break;
      case "execution_error": {
        this.setRunning(null);
        void this.#showRunTimes(data.prompt_id);
        // Inside a subgraph: the failing node and each subgraph node around it are outlined.
        const path = nodePath(this.graph, String(data.node_id ?? ""));
        for (const node of path) node.has_errors = true;
        const failed = path[path.length - 1] as LoomNode | undefined;
        if (failed?.loom) failed.loom.errors = [{ message: `${data.exception_type}: ${data.exception_message}` }];
        const title = path.length ? path.map((n) => n.title).join(" › ") : String(data.node_type);
        showRuntimeError(data as RuntimeError, title, () => path.length && this.canvas.centerOnNode(path[0]));
        break;
      }
      case "execution_interrupted":
        this.setRunning(null);
        void this.#showRunTimes(data.prompt_id);
        toast("Run interrupted");
        break;
      case "node_warning": {
        const node = this.node(data.node);
        toast(`${node?.title ?? `Node ${data.node}`}: ${data.message}`);
        break;
      }
      default:
        return;
    }
    this.canvas.setDirty(true, false);
  }

  #progress(fraction: number): void {
    this.progressBar.style.width = `${Math.round(fraction * 100)}%`;
    document.title = `[${Math.round(fraction * 100)}%] ${TITLE}`;
  }

  /** Another tab's job: its progress, images in the gallery and how it ended, but nothing on these nodes. */
  #background(type: string, data: any): void {
    switch (type) {
      case "progress":
        this.#progress(data.max ? data.value / data.max : 0);
        break;
      case "executed":
        this.gallery.add(data.output?.images ?? []);
        break;
      case "execution_error":
        toast(`A job of another tab failed: ${data.exception_type}: ${data.exception_message}`, "error", 8000);
        this.setRunning(null);
        break;
      case "execution_success":
      case "execution_interrupted":
        this.setRunning(null);
        break;
    }
  }

  /** The finished job's node times (its history entry, written before the closing event) as badges. */
  async #showRunTimes(promptId: string | undefined): Promise<void> {
    if (!promptId) return;
    try {
      const nodes = (await this.api.historyEntry(promptId))?.timings?.nodes;
      if (nodes) applyRunTimes(this.graph, nodes);
    } catch {
      return; // history unreachable: the run's outputs are shown all the same, only without times
    }
    this.canvas.setDirty(true, false);
  }

  #showOutput(node: LoomNode | null, images: ImageRef[]): void {
    if (!images.length) return;
    this.gallery.add(images);
    if (!node?.loom) return;
    const urls = images.map((img) => this.api.viewUrl(img));
    node.loom.imageUrls = urls;
    node.loom.preview = null;
    node.loom.images = urls.map((url) => {
      const img = new Image();
      img.onload = () => {
        fitImages(node);
        this.canvas.setDirty(true, true);
      };
      img.src = url;
      return img;
    });
  }

  /** Whether live previews are shown (the "Live previews" setting). */
  showPreviews: () => boolean = () => true;

  /** A live preview frame: shown on the running node until its output arrives, unless another tab's job sent it
   * (a node of the shown workflow may have the running node's id). */
  preview(blob: Blob): void {
    if (!this.showPreviews() || this.elsewhere(this.#currentJob)) return;
    const job = this.#currentJob;
    const img = new Image();
    const url = URL.createObjectURL(blob);
    img.onload = () => {
      const node = this.elsewhere(job) ? null : this.node(this.runningNode);
      if (!node?.loom) {
        URL.revokeObjectURL(url);
        return;
      }
      const old = node.loom.preview;
      if (old) URL.revokeObjectURL(old.src);
      node.loom.preview = img;
      fitImages(node);
      this.canvas.setDirty(true, false);
    };
    img.src = url;
  }
}
