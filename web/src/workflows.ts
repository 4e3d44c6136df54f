// Saved workflows, kept on the server in the user's `workflows/` folder (`/userdata`): save the canvas under a
// name, open (in a tab), rename and delete; the active tab's saved name is shown with a mark while it has
// unsaved changes.

import type { Api } from "./api";
import { UNSAVED_TITLE } from "./tabs";
import { el, toast } from "./ui";

const FOLDER = "workflows";

export interface WorkflowActions {
  /** The canvas as a saved file holds it. */
  serialize(): unknown;
  /** Opens the saved workflow `name` (its tab, when it is open already). */
  open(name: string, workflow: unknown): void;
  /** The workflow on the canvas: its saved name (null: not saved) and whether it changed since. */
  current(): { saved: string | null; modified: boolean };
  /** The canvas was saved as `name`. */
  savedAs(name: string): void;
  /** The saved workflow `name` was renamed to `to`, or deleted (`to` null). */
  savedChanged(name: string, to: string | null): void;
}

/** One entry of a `/v2/userdata` listing. */
interface Entry {
  name: string;
  type: "file" | "directory";
}

function fileOf(name: string): string {
  return encodeURIComponent(`${FOLDER}/${name}.json`);
}

export class WorkflowsPanel {
  readonly element: HTMLElement;
  readonly #list = el("ul", { class: "workflow-list" });
  readonly #name = el("input", { type: "text", placeholder: "name", class: "workflow-name", "aria-label": "Workflow name" });
  readonly #current = el("div", { class: "current" });

  constructor(
    private readonly api: Api,
    private readonly actions: WorkflowActions,
  ) {
    const save = el("button", { class: "save", text: "Save", title: "Save the canvas on the server under this name" });
    save.onclick = () => void this.save(this.#name.value.trim() || this.actions.current().saved || "");
    this.element = el(
      "section",
      { class: "loom-panel workflows-panel" },
      el("h2", { text: "Workflows" }),
      this.#current,
      el("div", { class: "save-row" }, this.#name, save),
      this.#list,
    );
  }

  async refresh(): Promise<void> {
    let names: string[] = [];
    try {
      // The user folder first: the listing of a folder not made yet is a 404, which the console would show.
      const root = await this.api.json<Entry[]>("/v2/userdata");
      if (root.some((e) => e.name === FOLDER && e.type === "directory")) {
        names = (await this.api.listUserData(FOLDER)).map((f) => f.path);
      }
    } catch (e) {
      toast(`Could not list the saved workflows: ${(e as Error).message}`, "error");
    }
    const saved = names.filter((n) => n.endsWith(".json")).map((n) => n.slice(0, -5)).sort((a, b) => a.localeCompare(b));
    this.#list.replaceChildren(...saved.map((name) => this.#row(name)));
    if (!saved.length) this.#list.append(el("li", { class: "empty", text: "No saved workflows" }));
  }

  async save(name: string): Promise<void> {
    if (!name) {
      toast("Give the workflow a name", "error");
      return;
    }
    try {
      await this.api.fetch(`/userdata/${fileOf(name)}`, { method: "POST", body: JSON.stringify(this.actions.serialize()) }).then(check);
    } catch (e) {
      toast(`Could not save ${name}: ${(e as Error).message}`, "error");
      return;
    }
    this.actions.savedAs(name);
    this.#name.value = "";
    toast(`Saved ${name}`);
    await this.refresh();
  }

  async open(name: string): Promise<void> {
    try {
      this.actions.open(name, await this.api.json(`/userdata/${fileOf(name)}`));
    } catch (e) {
      toast(`Could not open ${name}: ${(e as Error).message}`, "error");
    }
  }

  async #rename(name: string, to: string): Promise<void> {
    try {
      await this.api.fetch(`/userdata/${fileOf(name)}/move/${fileOf(to)}?overwrite=false`, { method: "POST" }).then(check);
    } catch (e) {
      toast(`Could not rename ${name}: ${(e as Error).message}`, "error");
      return;
    }
    this.actions.savedChanged(name, to);
    await this.refresh();
  }

  async #delete(name: string): Promise<void> {
    try {
      await this.api.fetch(`/userdata/${fileOf(name)}`, { method: "DELETE" }).then(check);
    } catch (e) {
      toast(`Could not delete ${name}: ${(e as Error).message}`, "error");
      return;
    }
    this.actions.savedChanged(name, null);
    await this.refresh();
  }

  #row(name: string): HTMLElement {
    const open = el("button", { class: "name", text: name, title: "Open" });
    open.onclick = () => void this.open(name);
    const rename = el("button", { class: "rename", text: "Rename" });
    rename.onclick = () => {
      const field = el("input", { type: "text", value: name, class: "rename-field", "aria-label": `New name for ${name}` });
      field.onkeydown = (e) => {
        e.stopPropagation();
        if (e.key === "Enter" && field.value.trim() && field.value.trim() !== name) void this.#rename(name, field.value.trim());
        if (e.key === "Escape") void this.refresh();
      };
      open.replaceWith(field);
      field.focus();
      field.select();
    };
    const remove = el("button", { class: "delete", text: "Delete" });
    remove.onclick = () => void this.#delete(name);
    return el("li", { "data-workflow": name, class: name === this.actions.current().saved ? "open" : "" }, open, rename, remove);
  }

  /** Shows the active workflow's saved name and mark (call when the tab or its mark changes). */
  renderCurrent(): void {
    const { saved, modified } = this.actions.current();
    this.#current.textContent = saved ? `${saved}${modified ? " •" : ""}` : UNSAVED_TITLE;
    this.#current.title = modified ? "Changed since it was saved" : "";
    this.#current.classList.toggle("modified", modified);
    for (const row of this.#list.querySelectorAll<HTMLElement>("li[data-workflow]")) {
      row.classList.toggle("open", row.dataset.workflow === saved);
    }
  }
}

async function check(res: Response): Promise<Response> {
  if (!res.ok) throw new Error((await res.text()) || `HTTP ${res.status}`);
  return res;
}
