// User settings, stored on the server (`GET /settings`, `POST /settings/{id}`) so they follow the user across
// browsers: link style, snap to grid, live previews, theme and keybindings. Each change applies at once.

import { type LGraphCanvas, LiteGraph } from "@comfyorg/litegraph";
import type { Api } from "./api";
import { el, toast } from "./ui";

export const LINK_STYLES = { spline: LiteGraph.SPLINE_LINK, linear: LiteGraph.LINEAR_LINK, straight: LiteGraph.STRAIGHT_LINK } as const;
export type LinkStyle = keyof typeof LINK_STYLES;

/** Actions that have a key; the keys are combos as `comboOf` writes them ("Ctrl+Enter", "/"). */
export const DEFAULT_KEYS: Record<string, string> = {
  queue: "Ctrl+Enter",
  save: "Ctrl+S",
  open: "Ctrl+O",
  search: "/",
  undo: "Ctrl+Z",
  redo: "Ctrl+Y",
  mute: "Ctrl+M",
  bypass: "Ctrl+B",
  group: "Ctrl+G",
};

export interface SettingValues {
  "Loom.LinkStyle": LinkStyle;
  "Loom.SnapToGrid": boolean;
  /** "auto": live previews of a running sampler are shown; "none": they are not. */
  "Loom.PreviewMethod": "auto" | "none";
  "Loom.Theme": "dark" | "light";
  "Loom.Keybindings": Record<string, string>;
}

const DEFAULTS: SettingValues = {
  "Loom.LinkStyle": "spline",
  "Loom.SnapToGrid": false,
  "Loom.PreviewMethod": "auto",
  "Loom.Theme": "dark",
  "Loom.Keybindings": DEFAULT_KEYS,
};

/** "Ctrl+Shift+Z" for a key event (Cmd counts as Ctrl); a lone modifier gives "". */
export function comboOf(e: KeyboardEvent): string {
  if (["Control", "Shift", "Alt", "Meta"].includes(e.key)) return "";
  const ctrl = e.ctrlKey || e.metaKey;
  const key = e.key.length === 1 ? e.key.toUpperCase() : e.key;
  // Shift counts with a modifier or a named key; alone with a character it is part of the character ("?").
  const shift = e.shiftKey && (ctrl || e.altKey || e.key.length > 1);
  return [ctrl ? "Ctrl" : "", e.altKey ? "Alt" : "", shift ? "Shift" : "", key].filter(Boolean).join("+");
}

export class Settings {
  #values: SettingValues = { ...DEFAULTS };

  constructor(
    private readonly api: Api,
    private readonly canvas: LGraphCanvas,
  ) {}

  get<K extends keyof SettingValues>(id: K): SettingValues[K] {
    return this.#values[id];
  }

  /** The key combo -> action table for the keyboard handler. */
  keys(): Map<string, string> {
    const keys = { ...DEFAULT_KEYS, ...this.#values["Loom.Keybindings"] };
    return new Map(Object.entries(keys).map(([action, combo]) => [combo, action]));
  }

  async load(): Promise<void> {
    try {
      const stored = await this.api.json<Partial<SettingValues>>("/settings");
      for (const id of Object.keys(DEFAULTS) as (keyof SettingValues)[]) {
        if (stored[id] !== undefined) (this.#values as any)[id] = stored[id];
      }
    } catch {
      // A server without settings: the defaults hold for this session.
    }
    this.apply();
  }

  async set<K extends keyof SettingValues>(id: K, value: SettingValues[K]): Promise<void> {
    this.#values[id] = value;
    this.apply();
    try {
      await this.api.post(`/settings/${encodeURIComponent(id)}`, value);
    } catch (e) {
      toast(`Could not save the setting: ${(e as Error).message}`, "error");
    }
  }

  apply(): void {
    const { canvas } = this;
    canvas.links_render_mode = LINK_STYLES[this.get("Loom.LinkStyle")] ?? LiteGraph.SPLINE_LINK;
    LiteGraph.alwaysSnapToGrid = this.get("Loom.SnapToGrid");
    const light = this.get("Loom.Theme") === "light";
    document.documentElement.classList.toggle("light", light);
    canvas.clear_background_color = light ? "#e4e6ea" : "#222";
    canvas.setDirty(true, true);
  }
}

/** The settings dialog: one control per setting, saved as it changes. */
export class SettingsDialog {
  readonly element = el("div", { class: "loom-settings", role: "dialog", "aria-label": "Settings" });

  constructor(private readonly settings: Settings) {
    this.element.hidden = true;
    document.body.append(this.element);
  }

  get isOpen(): boolean {
    return !this.element.hidden;
  }

  close(): void {
    this.element.hidden = true;
  }

  show(): void {
    const s = this.settings;
    const select = (id: "Loom.LinkStyle" | "Loom.PreviewMethod" | "Loom.Theme", options: string[]) => {
      const control = el("select", { id: `setting-${id}` }, ...options.map((o) => el("option", { value: o, text: o })));
      control.value = s.get(id);
      control.onchange = () => void s.set(id, control.value as never);
      return control;
    };
    const snap = el("input", { type: "checkbox", id: "setting-Loom.SnapToGrid" });
    snap.checked = s.get("Loom.SnapToGrid");
    snap.onchange = () => void s.set("Loom.SnapToGrid", snap.checked);
    const keys = { ...DEFAULT_KEYS, ...s.get("Loom.Keybindings") };
    const keyRows = Object.entries(keys).map(([action, combo]) => {
      const field = el("input", { class: "key", value: combo, readonly: "", "data-action": action, title: "Click, then press the new key" });
      field.onkeydown = (e) => {
        const pressed = comboOf(e);
        e.preventDefault();
        e.stopPropagation();
        if (!pressed) return;
        field.value = pressed;
        void s.set("Loom.Keybindings", { ...s.get("Loom.Keybindings"), [action]: pressed });
      };
      return el("label", {}, el("span", { text: action }), field);
    });
    const close = el("button", { class: "close", text: "×", title: "Close (Esc)" });
    close.onclick = () => this.close();
    this.element.replaceChildren(
      el("header", {}, el("h3", { text: "Settings" }), close),
      el("label", {}, el("span", { text: "Link style" }), select("Loom.LinkStyle", Object.keys(LINK_STYLES))),
      el("label", {}, el("span", { text: "Snap to grid" }), snap),
      el("label", {}, el("span", { text: "Live previews" }), select("Loom.PreviewMethod", ["auto", "none"])),
      el("label", {}, el("span", { text: "Theme" }), select("Loom.Theme", ["dark", "light"])),
      el("h4", { text: "Keybindings" }),
      ...keyRows,
    );
    this.element.hidden = false;
  }
}
