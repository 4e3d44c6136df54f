// The searchable node palette: opened by a double-click on empty canvas (or the toolbar / "/" key), it ranks
// node types by display name and class name (fuzzy: "ksmplr" finds KSampler), category, pack and description,
// narrows them by socket type (`in:LATENT out:IMAGE`), and adds the chosen one where the user clicked.

import type { NodeDef } from "./schema";

/** When the palette opens from a dropped link: only node types with a matching socket are offered. */
export interface SlotFilter {
  type: string;
  /** True: the new node needs an input of `type` (the link comes from an output). */
  input: boolean;
}

export interface PaletteOptions {
  defs: () => Map<string, NodeDef>;
  add: (type: string, screenPos: [number, number], filter: SlotFilter | null) => void;
  compatible: (outputType: string, inputType: string) => boolean;
}

/**
 * How well `text` matches `term` as a fuzzy subsequence ("ksmplr" in "ksampler"): 0 when it does not, higher
 * for matches that start earlier and keep their letters together.
 */
export function fuzzy(term: string, text: string): number {
  let at = -1;
  let gaps = 0;
  for (const ch of term) {
    const next = text.indexOf(ch, at + 1);
    if (next < 0) return 0;
    if (at >= 0) gaps += next - at - 1;
    else gaps += next;
    at = next;
  }
  return Math.max(1, 4 - gaps / Math.max(term.length, 1));
}

function score(def: NodeDef, terms: string[]): number {
  const name = def.displayName.toLowerCase();
  const cls = def.name.toLowerCase();
  const rest = `${def.category} ${def.pack} ${def.description}`.toLowerCase();
  let total = 0;
  for (const term of terms) {
    if (name.startsWith(term) || cls.startsWith(term)) total += 10;
    else if (name.includes(term) || cls.includes(term)) total += 6;
    else if (rest.includes(term)) total += 2;
    else {
      const loose = Math.max(fuzzy(term, name), fuzzy(term, cls));
      if (!loose) return 0;
      total += loose;
    }
  }
  return total - (def.deprecated ? 3 : 0);
}

/** `in:TYPE` and `out:TYPE` words of a query: node types with such an input / output socket. */
interface Query {
  terms: string[];
  inputs: string[];
  outputs: string[];
}

export function parseQuery(text: string): Query {
  const query: Query = { terms: [], inputs: [], outputs: [] };
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const typed = word.match(/^(in|out):(.+)$/i);
    if (typed) (typed[1].toLowerCase() === "in" ? query.inputs : query.outputs).push(typed[2].toUpperCase());
    else query.terms.push(word.toLowerCase());
  }
  return query;
}

export class Palette {
  readonly element: HTMLDivElement;
  readonly #input: HTMLInputElement;
  readonly #list: HTMLUListElement;
  #results: NodeDef[] = [];
  #selected = 0;
  #pos: [number, number] = [0, 0];
  /** The pointer event that opened the palette must not close it again as it bubbles up. */
  #opener: Event | null = null;
  #filter: SlotFilter | null = null;

  constructor(private readonly options: PaletteOptions) {
    this.element = document.createElement("div");
    this.element.className = "loom-palette";
    this.element.hidden = true;
    this.element.innerHTML = `<input type="search" placeholder="Search nodes…" aria-label="Search nodes" /><ul role="listbox"></ul>`;
    this.#input = this.element.querySelector("input")!;
    this.#list = this.element.querySelector("ul")!;
    this.#input.addEventListener("input", () => this.#update());
    this.#input.addEventListener("keydown", (e) => this.#onKey(e));
    this.#list.addEventListener("pointerdown", (e) => {
      const li = (e.target as HTMLElement).closest("li");
      if (li) this.#choose(Number(li.dataset.index));
    });
    document.addEventListener("pointerdown", (e) => {
      if (e !== this.#opener && !this.element.hidden && !this.element.contains(e.target as Node)) this.close();
    });
    document.body.appendChild(this.element);
  }

  get isOpen(): boolean {
    return !this.element.hidden;
  }

  open(screenPos: [number, number], opener: Event | null = null, filter: SlotFilter | null = null): void {
    this.#pos = screenPos;
    this.#opener = opener;
    this.#filter = filter;
    this.#input.placeholder = filter ? `Search nodes taking ${filter.type}…` : "Search nodes (name, category, pack; in:TYPE out:TYPE)…";
    this.element.hidden = false;
    const left = Math.min(screenPos[0], window.innerWidth - 440);
    const top = Math.min(screenPos[1], window.innerHeight - 380);
    this.element.style.left = `${Math.max(0, left)}px`;
    this.element.style.top = `${Math.max(0, top)}px`;
    this.#input.value = "";
    this.#update();
    this.#input.focus();
  }

  close(): void {
    this.element.hidden = true;
  }

  #update(): void {
    const { terms, inputs, outputs } = parseQuery(this.#input.value);
    const filter = this.#filter;
    if (filter) (filter.input ? inputs : outputs).push(filter.type);
    const { compatible } = this.options;
    const defs = [...this.options.defs().values()].filter(
      (d) =>
        inputs.every((t) => d.inputs.some((i) => compatible(t, i.type))) &&
        outputs.every((t) => d.outputs.some((o) => compatible(o.type, t))),
    );
    this.#results = terms.length
      ? defs
          .map((d) => [d, score(d, terms)] as const)
          .filter(([, s]) => s > 0)
          .sort((a, b) => b[1] - a[1] || a[0].displayName.localeCompare(b[0].displayName))
          .map(([d]) => d)
          .slice(0, 60)
      : defs.sort((a, b) => a.category.localeCompare(b.category) || a.displayName.localeCompare(b.displayName)).slice(0, 60);
    this.#selected = 0;
    this.#render();
  }

  #render(): void {
    this.#list.replaceChildren(
      ...this.#results.map((def, i) => {
        const li = document.createElement("li");
        li.dataset.index = String(i);
        li.dataset.type = def.name;
        li.className = i === this.#selected ? "selected" : "";
        li.setAttribute("role", "option");
        const title = document.createElement("span");
        title.className = "name";
        title.textContent = def.displayName;
        const cat = document.createElement("span");
        cat.className = "category";
        cat.textContent = def.pack === "Loom" ? def.category : `${def.category} · ${def.pack}`;
        li.append(title, cat);
        if (def.description) {
          const desc = document.createElement("div");
          desc.className = "description";
          desc.textContent = def.description;
          li.append(desc);
        }
        li.title = def.name;
        return li;
      }),
    );
    this.#list.children[this.#selected]?.scrollIntoView({ block: "nearest" });
  }

  #onKey(e: KeyboardEvent): void {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      const delta = e.key === "ArrowDown" ? 1 : -1;
      this.#selected = Math.max(0, Math.min(this.#results.length - 1, this.#selected + delta));
      this.#render();
      e.preventDefault();
    } else if (e.key === "Enter") {
      this.#choose(this.#selected);
      e.preventDefault();
    } else if (e.key === "Escape") {
      this.close();
    }
    e.stopPropagation();
  }

  #choose(index: number): void {
    const def = this.#results[index];
    if (!def) return;
    this.close();
    this.options.add(def.name, this.#pos, this.#filter);
  }
}
