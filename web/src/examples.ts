// The Examples dialog: one card per example the server ships (`/templates/index.json`), with its title, its
// description and a thumbnail drawn from the workflow itself (nodes as boxes, links as lines).

import type { Api, TemplateInfo } from "./api";
import { typeColor } from "./nodes";
import { el, toast } from "./ui";

const THUMB_W = 240;
const THUMB_H = 130;

interface ThumbNode {
  id: number | string;
  pos: [number, number] | { 0: number; 1: number };
  size: [number, number] | { 0: number; 1: number };
  color?: string;
  bgcolor?: string;
}

/** Draws a canvas-format workflow scaled into a thumbnail; nothing when the data has no nodes. */
export function drawThumbnail(target: HTMLCanvasElement, workflow: any): void {
  const ctx = target.getContext("2d");
  const nodes: ThumbNode[] = Array.isArray(workflow?.nodes) ? workflow.nodes : [];
  if (!ctx || !nodes.length) return;
  const x0 = Math.min(...nodes.map((n) => n.pos[0]));
  const y0 = Math.min(...nodes.map((n) => n.pos[1]));
  const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
  const y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
  const pad = 8;
  const scale = Math.min((target.width - pad * 2) / (x1 - x0 || 1), (target.height - pad * 2) / (y1 - y0 || 1));
  const ox = pad + (target.width - pad * 2 - (x1 - x0) * scale) / 2;
  const oy = pad + (target.height - pad * 2 - (y1 - y0) * scale) / 2;
  const at = (x: number, y: number): [number, number] => [ox + (x - x0) * scale, oy + (y - y0) * scale];
  const byId = new Map(nodes.map((n) => [String(n.id), n]));
  ctx.lineWidth = 1.5;
  for (const link of Array.isArray(workflow.links) ? workflow.links : []) {
    const [, origin, , target2, , type] = Array.isArray(link) ? link : [link.id, link.origin_id, 0, link.target_id, 0, link.type];
    const a = byId.get(String(origin));
    const b = byId.get(String(target2));
    if (!a || !b) continue;
    ctx.strokeStyle = typeColor(String(type));
    ctx.beginPath();
    ctx.moveTo(...at(a.pos[0] + a.size[0], a.pos[1] + 10));
    ctx.lineTo(...at(b.pos[0], b.pos[1] + 10));
    ctx.stroke();
  }
  for (const node of nodes) {
    const [x, y] = at(node.pos[0], node.pos[1]);
    ctx.fillStyle = node.bgcolor ?? "#353535";
    ctx.fillRect(x, y, node.size[0] * scale, node.size[1] * scale);
    ctx.fillStyle = node.color ?? "#4a4a4a";
    ctx.fillRect(x, y, node.size[0] * scale, Math.max(2, 30 * scale));
  }
}

export class ExamplesDialog {
  readonly element = el("div", { class: "loom-examples", role: "dialog", "aria-label": "Examples" });

  constructor(
    private readonly api: Api,
    private readonly open: (workflow: unknown, title: string) => void,
  ) {
    this.element.hidden = true;
    this.element.addEventListener("click", (e) => {
      if (e.target === this.element) this.close();
    });
    document.body.append(this.element);
  }

  get isOpen(): boolean {
    return !this.element.hidden;
  }

  async show(): Promise<void> {
    let templates: TemplateInfo[];
    try {
      templates = (await this.api.templates()).flatMap((group) => group.templates);
    } catch {
      toast("This server does not list example workflows", "error");
      return;
    }
    if (!templates.length) {
      toast("No example workflows on this server");
      return;
    }
    const close = el("button", { class: "close", text: "×", title: "Close (Esc)" });
    close.onclick = () => this.close();
    const grid = el("div", { class: "grid" }, ...templates.map((t) => this.#card(t)));
    this.element.replaceChildren(el("div", { class: "box" }, el("header", {}, el("h3", { text: "Examples" }), close), grid));
    this.element.hidden = false;
  }

  close(): void {
    this.element.hidden = true;
  }

  #card(template: TemplateInfo): HTMLElement {
    const thumb = el("canvas", { width: String(THUMB_W), height: String(THUMB_H), class: "thumb" });
    const workflow = this.api.template(template.name);
    workflow.then((data) => drawThumbnail(thumb, data)).catch(() => thumb.classList.add("missing"));
    const card = el(
      "button",
      { class: "card", "data-example": template.name, title: `Open ${template.title}` },
      thumb,
      el("strong", { text: template.title }),
      el("span", { class: "description", text: template.description }),
    );
    card.onclick = async () => {
      this.close();
      try {
        this.open(await workflow, template.title);
      } catch (e) {
        toast(`Could not open ${template.title}: ${(e as Error).message}`, "error");
      }
    };
    return card;
  }
}
