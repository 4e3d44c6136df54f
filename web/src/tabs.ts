// Tabs for the open workflows. One litegraph graph shows the active tab; the others wait as serialised workflows
// with their own undo history and view, swapped in when their tab is picked. Each tab has an unsaved mark;
// closing a tab with unsaved changes asks first; the tabs (not their histories) are kept in local storage and
// come back after a reload.

import type { GraphState } from "./graph_state";
import type { UndoStack } from "./undo";
import { el } from "./ui";

const STORAGE_KEY = "loom.tabs";
/** Where the canvas kept its one workflow before it had tabs: read once, so an upgrade keeps the canvas. */
const LEGACY_KEY = "loom.workflow";
export const UNSAVED_TITLE = "Unsaved workflow";

interface View {
  scale: number;
  offset: [number, number];
}

/** One open workflow. */
export interface Tab {
  title: string;
  /** Its name among the saved workflows (`/userdata`, `workflows/<name>.json`); null when it is not one. */
  saved: string | null;
  /** Changed since it was opened or saved. */
  modified: boolean;
  /** The workflow while another tab is shown (the graph holds the active tab's). */
  workflow: unknown;
  undo: UndoStack | null;
  view: View | null;
  /** The jobs queued from it (this visit), whose events belong on its nodes. */
  jobs: Set<string>;
}

/** What survives a reload: the tabs without their undo histories. */
interface Stored {
  active: number;
  tabs: { title: string; saved: string | null; modified: boolean; workflow: unknown; view: View | null }[];
}

export interface TabHooks {
  /** Puts the default workflow on the (empty) graph: a new tab, or nothing to restore. */
  blank(): void;
  /** Another workflow took the graph (a tab shown, opened or made). */
  shown(): void;
  /** The tabs, a title or a mark changed. */
  changed(): void;
  /** Asks before a tab with unsaved changes is closed. */
  confirmClose(tab: Tab): boolean;
}

export class WorkflowTabs {
  readonly element = el("nav", { class: "workflow-tabs", "aria-label": "Open workflows" });
  readonly tabs: Tab[] = [];
  #active!: Tab;
  /** Jobs of tabs closed since: their events belong to no workflow on the canvas. */
  readonly #orphanJobs = new Set<string>();

  constructor(
    private readonly state: GraphState,
    private readonly hooks: TabHooks,
  ) {
    state.persist = () => this.#store();
    state.onChange.push(() => this.markModified());
  }

  /** The tab shown; undefined until `restore()` ran (a panel may ask before). */
  get active(): Tab | undefined {
    return this.#active;
  }

  /** The tabs of the last visit, else one with the default workflow. Starts the shown tab's undo history. */
  restore(): void {
    const stored = this.#stored();
    for (const tab of stored.tabs) this.tabs.push({ ...tab, undo: null, jobs: new Set() });
    if (!this.tabs.length) {
      this.#blankTab();
      return;
    }
    this.#active = this.tabs[Math.min(Math.max(Number(stored.active) || 0, 0), this.tabs.length - 1)];
    try {
      this.#show(this.#active);
    } catch {
      // An unreadable stored workflow: that tab starts over from the default workflow.
      this.state.graph.clear();
      this.hooks.blank();
      this.state.startHistory();
    }
    this.#render();
  }

  #stored(): Stored {
    try {
      const text = localStorage.getItem(STORAGE_KEY);
      if (text) {
        const stored = JSON.parse(text) as Stored;
        return { active: stored.active, tabs: stored.tabs.filter((t) => t.workflow && typeof t.title === "string") };
      }
      const legacy = localStorage.getItem(LEGACY_KEY);
      const tab = { title: UNSAVED_TITLE, saved: null, modified: false, workflow: legacy && JSON.parse(legacy), view: null };
      if (legacy) return { active: 0, tabs: [tab] };
    } catch {
      // Storage disabled or unreadable: start afresh.
    }
    return { active: 0, tabs: [] };
  }

  /** A new tab with the default workflow, shown. */
  newTab(): void {
    this.#stash();
    this.#blankTab();
  }

  #blankTab(): void {
    const tab: Tab = { title: UNSAVED_TITLE, saved: null, modified: false, workflow: null, undo: null, view: null, jobs: new Set() };
    this.tabs.push(tab);
    this.#active = tab;
    this.#home();
    this.state.graph.clear();
    this.hooks.blank();
    this.#fresh();
  }

  /**
   * Opens a workflow in a tab of its own (`load` puts it on the empty graph): the active tab when it is an
   * untouched unsaved one, else a new tab. A saved workflow already open in a tab just shows that tab.
   */
  open(load: () => void, title: string, saved: string | null = null): void {
    const open = saved === null ? undefined : this.tabs.find((t) => t.saved === saved);
    if (open) {
      this.select(open);
      return;
    }
    const current = this.#active;
    if (current.saved !== null || current.modified) {
      this.#stash();
      this.#active = { title, saved, modified: false, workflow: null, undo: null, view: null, jobs: new Set() };
      this.tabs.splice(this.tabs.indexOf(current) + 1, 0, this.#active);
    }
    Object.assign(this.#active, { title, saved, modified: false });
    this.#home();
    this.state.graph.clear();
    load();
    this.#fresh();
  }

  /** After a load into the active tab: drawn (nodes size to their widgets), a history of its own, stored. */
  #fresh(): void {
    this.state.canvas.draw(true, true);
    this.state.startHistory();
    this.state.schedulePersist();
    this.hooks.shown();
    this.#render();
  }

  select(tab: Tab): void {
    if (tab === this.#active) return;
    this.#stash();
    this.#active = tab;
    this.#show(tab);
    this.state.schedulePersist();
    this.#render();
  }

  /** Closes `tab` (asking first when it has unsaved changes); the last tab closed leaves a new one. */
  close(tab: Tab): boolean {
    if (tab.modified && !this.hooks.confirmClose(tab)) return false;
    const index = this.tabs.indexOf(tab);
    this.tabs.splice(index, 1);
    for (const id of tab.jobs) this.#orphanJobs.add(id);
    if (tab === this.#active) {
      const next = this.tabs[Math.min(index, this.tabs.length - 1)];
      if (next) {
        this.#active = next;
        this.#show(next);
      } else {
        this.#blankTab();
      }
    }
    this.state.schedulePersist();
    this.#render();
    return true;
  }

  /** Whether the job was queued from a tab other than the active one (or from one closed since). */
  elsewhere(promptId: string | undefined): boolean {
    if (promptId === undefined) return false;
    return this.#orphanJobs.has(promptId) || this.tabs.some((t) => t !== this.#active && t.jobs.has(promptId));
  }

  /** The active tab changed (an edit, undo or redo). */
  markModified(): void {
    if (this.#active.modified) return;
    this.#active.modified = true;
    this.#render();
  }

  /** The active tab was saved as `name`; another tab that was that saved workflow is an unsaved copy now. */
  savedAs(name: string): void {
    for (const tab of this.tabs.filter((t) => t.saved === name && t !== this.#active)) {
      Object.assign(tab, { saved: null, modified: true });
    }
    Object.assign(this.#active, { title: name, saved: name, modified: false });
    this.state.schedulePersist();
    this.#render();
  }

  /** A saved workflow was renamed (`to`) or deleted (`to` null: its tabs are unsaved workflows now). */
  savedChanged(name: string, to: string | null): void {
    for (const tab of this.tabs.filter((t) => t.saved === name)) {
      if (to === null) Object.assign(tab, { saved: null, modified: true });
      else Object.assign(tab, { saved: to, title: to });
    }
    this.state.schedulePersist();
    this.#render();
  }

  /** Keeps the active tab's workflow, history and view, before another tab takes the graph. */
  #stash(): void {
    const tab = this.#active;
    const { canvas, graph } = this.state;
    this.state.changed(); // an edit not yet recorded becomes a step of this tab's history (and marks it)
    this.#home();
    tab.workflow = graph.serialize();
    tab.undo = this.state.undo;
    tab.view = { scale: canvas.ds.scale, offset: [canvas.ds.offset[0], canvas.ds.offset[1]] };
  }

  /** Leaves an open subgraph: the workflow itself is what a tab swaps. */
  #home(): void {
    const { canvas, graph } = this.state;
    if (canvas.graph !== graph) canvas.setGraph(graph);
  }

  /** Puts a stashed tab on the graph with its history and view. */
  #show(tab: Tab): void {
    const { canvas, graph } = this.state;
    graph.configure(structuredClone(tab.workflow) as Parameters<typeof graph.configure>[0]);
    tab.workflow = null;
    canvas.draw(true, true);
    if (tab.undo) {
      this.state.undo = tab.undo;
      tab.undo.rebase();
    } else {
      this.state.startHistory();
    }
    tab.undo = null;
    if (tab.view) {
      canvas.ds.scale = tab.view.scale;
      canvas.ds.offset = [...tab.view.offset];
    } else {
      this.state.fitView();
    }
    canvas.setDirty(true, true);
    this.hooks.shown();
  }

  #store(): void {
    const stored: Stored = {
      active: this.tabs.indexOf(this.#active),
      tabs: this.tabs.map((tab) => ({
        title: tab.title,
        saved: tab.saved,
        modified: tab.modified,
        workflow: tab === this.#active ? this.state.graph.serialize() : tab.workflow,
        view: tab === this.#active ? { scale: this.state.canvas.ds.scale, offset: [...this.state.canvas.ds.offset] as [number, number] } : tab.view,
      })),
    };
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(stored));
      localStorage.removeItem(LEGACY_KEY);
    } catch {
      // Storage full or disabled: the canvas still works, it just will not survive a reload.
    }
  }

  #render(): void {
    const items = this.tabs.map((tab) => {
      const title = el("button", { class: "title", text: `${tab.title}${tab.modified ? " •" : ""}`, title: tab.modified ? "Changed since it was saved" : tab.title });
      title.onclick = () => this.select(tab);
      const close = el("button", { class: "close", text: "×", title: `Close ${tab.title}`, "aria-label": `Close ${tab.title}` });
      close.onclick = () => void this.close(tab);
      const classes = ["workflow-tab", tab === this.#active ? "active" : "", tab.modified ? "modified" : ""];
      return el("div", { class: classes.filter(Boolean).join(" "), "data-title": tab.title, role: "tab" }, title, close);
    });
    const add = el("button", { class: "new-tab", text: "+", title: "New workflow" });
    add.onclick = () => this.newTab();
    this.element.replaceChildren(...items, add);
    this.hooks.changed();
  }
}
