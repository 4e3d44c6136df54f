// Registers one litegraph node class per /object_info entry: typed, coloured slots, widgets built from the
// input specs (numbers with ranges, combos, multiline text, toggles, seed controls), widget <-> input
// conversion, and the run-time decorations (running outline, run-time or cached badge, errors, output images).

import {
  LGraphCanvas,
  LGraphNode,
  LiteGraph,
  Subgraph,
  type IContextMenuValue,
  type INodeInputSlot,
} from "@comfyorg/litegraph";
import type { ISerialisedNode } from "@comfyorg/litegraph/dist/types/serialisation";
import type { IBaseWidget } from "@comfyorg/litegraph/dist/types/widgets";
import { CONTROL_VALUES, CONTROL_WIDGET, defaultValue, type InputDef, type NodeDef, readNodeDef } from "./schema";
import type { ObjectInfo } from "./api";
import { type DomKind, makeDomWidget } from "./dom_widgets";
import { addRunTimeBadge } from "./timings";

/** Per-node run-time state drawn on top of the node; reset when a run starts. */
export interface NodeRunState {
  cached: boolean;
  errors: { input?: string; message: string }[];
  images: HTMLImageElement[];
  imageUrls: string[];
  preview: HTMLImageElement | null;
}

export interface LoomNode extends LGraphNode {
  loom: NodeRunState;
  def: NodeDef;
}

const TYPE_COLORS: Record<string, string> = {
  MODEL: "#b39ddb",
  CLIP: "#ffd500",
  VAE: "#ff6e6e",
  CONDITIONING: "#ffa931",
  LATENT: "#ff9cf9",
  IMAGE: "#64b5f6",
  MASK: "#81c784",
  CONTROL_NET: "#00d78d",
  INT: "#29b6f6",
  FLOAT: "#aed581",
  STRING: "#9ccc65",
  BOOLEAN: "#ef9a9a",
  COMBO: "#b0bec5",
  CLIP_VISION: "#a8dadc",
  UPSCALE_MODEL: "#c0a060",
  NOISE: "#b0b0b0",
  SAMPLER: "#ecb4b4",
  SIGMAS: "#cdffcd",
};

export function typeColor(type: string): string {
  if (TYPE_COLORS[type]) return TYPE_COLORS[type];
  let hash = 0;
  for (const ch of type) hash = (hash * 31 + ch.charCodeAt(0)) | 0;
  return `hsl(${Math.abs(hash) % 360}, 55%, 65%)`;
}

function colorSlotType(canvas: LGraphCanvas, type: string): void {
  const color = typeColor(type);
  LGraphCanvas.link_type_colors[type] = color;
  canvas.default_connection_color_byType[type] = color;
  canvas.default_connection_color_byTypeOff[type] = color;
}

/** Same rule as engine/types.py: `*` matches anything, unions share a member, a combo input takes strings. */
export function typesCompatible(outputType: string, inputType: string): boolean {
  const norm = (t: unknown) => (t === "" || t === 0 || t == null ? "*" : String(t));
  const out = norm(outputType);
  const inp = norm(inputType);
  if (out === inp || out === "*" || inp === "*") return true;
  const outs = out.split(",").map((s) => s.trim());
  const ins = inp.split(",").map((s) => s.trim());
  if (outs.includes("*") || ins.includes("*") || outs.some((o) => ins.includes(o))) return true;
  return ins.includes("COMBO") && outs.some((o) => o === "COMBO" || o === "STRING");
}

function decimals(step: number): number {
  const text = String(step);
  return text.includes(".") ? text.split(".")[1].length : 0;
}

/** Adds the widget for one input (and its control widget); returns the widget. */
export function addInputWidget(node: LGraphNode, input: InputDef): IBaseWidget {
  const o = input.options;
  const value = defaultValue(input);
  let widget: IBaseWidget;
  switch (input.type) {
    case "INT":
    case "FLOAT": {
      const isInt = input.type === "INT";
      const step = Number(o.step ?? (isInt ? 1 : 0.01)) || (isInt ? 1 : 0.01);
      const precision = isInt ? 0 : Math.max(decimals(step), o.round ? decimals(Number(o.round)) : 0, 1);
      widget = node.addWidget("number", input.name, Number(value), (v: number) => {
        const snapped = isInt ? Math.round(v / step) * step : Number(v.toFixed(precision));
        if (snapped !== v) widget.value = snapped;
      }, { min: o.min, max: o.max, step2: step, precision });
      break;
    }
    case "BOOLEAN":
      widget = node.addWidget("toggle", input.name, Boolean(value), () => {}, {
        on: o.label_on ?? "true",
        off: o.label_off ?? "false",
      });
      break;
    case "STRING":
      widget = node.addWidget("text", input.name, String(value ?? ""), () => {}, { multiline: Boolean(o.multiline) });
      if (o.multiline) makeDomWidget(widget, "text");
      break;
    default:
      widget = node.addWidget("combo", input.name, value as string, () => {}, {
        values: (input.choices ?? []).map(String),
      });
  }
  widget.tooltip = input.tooltip;
  if (input.control) {
    const control = node.addWidget("combo", CONTROL_WIDGET, "randomize", () => {}, { values: [...CONTROL_VALUES] });
    (control as any).loomControlFor = input.name;
    control.tooltip = "What happens to the value after each queued run";
  }
  return widget;
}

export function isControlWidget(widget: IBaseWidget): boolean {
  return (widget as any).loomControlFor !== undefined;
}

/** Converts a widget to an input socket (the canvas format marks it with `widget: {name}`). */
export function convertWidgetToInput(node: LGraphNode, name: string): void {
  const input = (node as LoomNode).def?.inputs.find((i) => i.name === name);
  if (!input || node.inputs.some((slot) => slot.widget?.name === name)) return;
  node.addInput(name, input.type, { widget: { name } });
  node.setDirtyCanvas(true, true);
}

export function convertInputToWidget(node: LGraphNode, name: string): void {
  const index = node.inputs.findIndex((slot) => slot.widget?.name === name);
  if (index < 0) return;
  if (node.inputs[index].link != null) node.disconnectInput(index);
  node.removeInput(index);
  node.setDirtyCanvas(true, true);
}

/**
 * Inside a subgraph: the widget becomes an input of the subgraph, which litegraph shows as a widget of the same
 * kind on each subgraph node (its value is what the inner node gets unless that input is linked outside).
 */
export function promoteWidget(subgraph: Subgraph, node: LGraphNode, name: string): void {
  convertWidgetToInput(node, name);
  const slot = node.inputs.find((s) => s.widget?.name === name);
  if (!slot) return;
  const taken = new Set(subgraph.inputs.map((i) => i.name));
  let inputName = name;
  for (let n = 2; taken.has(inputName); n++) inputName = `${name}_${n}`;
  subgraph.addInput(inputName, String(slot.type)).connect(slot, node);
  node.setDirtyCanvas(true, true);
}

function freshState(): NodeRunState {
  return { cached: false, errors: [], images: [], imageUrls: [], preview: null };
}

/**
 * For combos with `image_upload`: a button (last, not serialised, so widget values keep their order) that uploads
 * a picked file to the input folder and selects it; the chosen input image is shown on the node.
 */
function addUploadButton(node: LoomNode, comboName: string, hooks: NodeHooks): void {
  const combo = node.widgets?.find((w) => w.name === comboName);
  if (!combo) return;
  const show = () => {
    if (!combo.value) return;
    const url = hooks.inputImageUrl(String(combo.value));
    const img = new Image();
    img.onload = () => {
      fitImages(node);
      node.setDirtyCanvas(true, true);
    };
    img.src = url;
    node.loom.images = [img];
    node.loom.imageUrls = [url];
  };
  const previous = combo.callback;
  combo.callback = (...args) => {
    previous?.(...args);
    show();
  };
  const button = node.addWidget("button", "choose file to upload", "image", () => {
    const picker = document.createElement("input");
    picker.type = "file";
    picker.accept = "image/*";
    picker.onchange = async () => {
      const file = picker.files?.[0];
      if (!file) return;
      const name = await hooks.uploadImage(file);
      if (!name) return;
      const values = combo.options.values as string[];
      if (!values.includes(name)) values.push(name);
      combo.value = name;
      show();
    };
    picker.click();
  });
  button.serialize = false;
  queueMicrotask(show);
}

export interface NodeHooks {
  /** Uploads an image to the input folder; resolves to the name to select (or null on failure). */
  uploadImage(file: File): Promise<string | null>;
  /** URL of an image in the input folder. */
  inputImageUrl(name: string): string;
  /** Called for every new node instance (extensions' nodeCreated). */
  nodeCreated(node: LoomNode): void;
  /** Opens an output image full size. */
  openImage(urls: string[]): void;
  /** Lets extensions adjust a class before it is registered. */
  beforeRegister(nodeClass: typeof LGraphNode, info: unknown): void;
}

const IMAGE_GAP = 6;

function widgetsBottom(node: LGraphNode): number {
  const last = node.widgets?.at(-1);
  if (last) return last.y + (last.computedHeight ?? LiteGraph.NODE_WIDGET_HEIGHT) + IMAGE_GAP;
  const rows = Math.max(node.inputs.length, node.outputs.length);
  return rows * LiteGraph.NODE_SLOT_HEIGHT + IMAGE_GAP;
}

const MODE_TINTS: Record<number, string> = { 2: "rgba(20, 20, 20, 0.55)", 4: "rgba(170, 60, 220, 0.35)" };

function drawRunState(node: LoomNode, ctx: CanvasRenderingContext2D): void {
  const tint = MODE_TINTS[node.mode];
  if (tint) {
    ctx.fillStyle = tint;
    const title = LiteGraph.NODE_TITLE_HEIGHT;
    ctx.fillRect(0, -title, node.size[0], node.size[1] + title);
  }
  const state = node.loom;
  const image = state.preview ?? state.images[0];
  if (image?.complete && image.naturalWidth && !node.collapsed) {
    const top = widgetsBottom(node);
    const w = node.size[0] - 10;
    const h = node.size[1] - top - 5;
    if (h > 20) {
      const scale = Math.min(w / image.naturalWidth, h / image.naturalHeight);
      const dw = image.naturalWidth * scale;
      const dh = image.naturalHeight * scale;
      ctx.drawImage(image, 5 + (w - dw) / 2, top + (h - dh) / 2, dw, dh);
      if (state.images.length > 1 && !state.preview) {
        ctx.fillStyle = "#fff";
        ctx.font = "12px Arial";
        ctx.fillText(`${state.images.length} images`, 8, node.size[1] - 8);
      }
    }
  }
  if (state.errors.length) {
    ctx.save();
    for (const error of state.errors) {
      if (!error.input) continue;
      const widget = node.widgets?.find((w) => w.name === error.input);
      const slotIndex = node.inputs.findIndex((s) => s.name === error.input);
      if (widget && (slotIndex < 0 || node.inputs[slotIndex].link == null)) {
        ctx.strokeStyle = LiteGraph.NODE_ERROR_COLOUR;
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.roundRect(12, widget.y - 2, node.size[0] - 24, (widget.computedHeight ?? 20) + 2, 6);
        ctx.stroke();
      } else if (slotIndex >= 0) {
        const pos = node.getConnectionPos(true, slotIndex);
        ctx.strokeStyle = LiteGraph.NODE_ERROR_COLOUR;
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.arc(pos[0] - node.pos[0], pos[1] - node.pos[1], 7, 0, Math.PI * 2);
        ctx.stroke();
      }
    }
    ctx.fillStyle = LiteGraph.NODE_ERROR_COLOUR;
    ctx.font = "12px Arial";
    ctx.textAlign = "left";
    state.errors.slice(0, 3).forEach((error, i) => {
      const prefix = error.input ? `${error.input}: ` : "";
      ctx.fillText(`${prefix}${error.message}`.slice(0, 90), 0, node.size[1] + 30 + i * 14);
    });
    ctx.restore();
  }
}

/** Makes sure an output node is tall enough to show its images. */
export function fitImages(node: LoomNode): void {
  if (!node.loom.images.length && !node.loom.preview) return;
  const minHeight = widgetsBottom(node) + 200;
  if (node.size[1] < minHeight) node.setSize([Math.max(node.size[0], 220), minHeight]);
}

export function resetRunState(node: LGraphNode, keepImages: boolean): void {
  const loom = (node as LoomNode).loom;
  if (!loom) return;
  const images = keepImages ? loom.images : [];
  const urls = keepImages ? loom.imageUrls : [];
  (node as LoomNode).loom = { ...freshState(), images, imageUrls: urls };
  node.has_errors = false;
  node.progress = undefined;
}

/** Loom's entries, which litegraph puts above its own (returning its `options` too would list those twice). */
function extraMenu(node: LoomNode): IContextMenuValue<unknown>[] {
  const convertible = node.def.inputs.filter((i) => i.widget);
  const converted = new Set(node.inputs.filter((s) => s.widget).map((s) => s.widget!.name));
  const toInput = convertible.filter((i) => !converted.has(i.name));
  const toWidget = convertible.filter((i) => converted.has(i.name));
  const items: IContextMenuValue<unknown>[] = [];
  if (toInput.length)
    items.push({
      content: "Convert widget to input",
      has_submenu: true,
      submenu: {
        options: toInput.map((i) => ({ content: i.name, callback: () => convertWidgetToInput(node, i.name) })),
      },
    });
  if (toWidget.length)
    items.push({
      content: "Convert input to widget",
      has_submenu: true,
      submenu: {
        options: toWidget.map((i) => ({ content: i.name, callback: () => convertInputToWidget(node, i.name) })),
      },
    });
  const subgraph = node.graph instanceof Subgraph ? node.graph : null;
  const promotable = convertible.filter((i) => !node.inputs.some((s) => s.widget?.name === i.name && s.link != null));
  if (subgraph && promotable.length)
    items.push({
      content: "Promote widget to subgraph input",
      has_submenu: true,
      submenu: {
        options: promotable.map((i) => ({ content: i.name, callback: () => promoteWidget(subgraph, node, i.name) })),
      },
    });
  items.push({ content: node.mode === 4 ? "Un-bypass" : "Bypass", callback: () => toggleMode(node, 4) });
  items.push({ content: node.mode === 2 ? "Unmute" : "Mute", callback: () => toggleMode(node, 2) });
  if (node.loom.imageUrls.length)
    items.push({ content: "Open image", callback: () => hooksOf(node).openImage(node.loom.imageUrls) });
  return items;
}

export function toggleMode(node: LGraphNode, mode: 2 | 4): void {
  node.graph?.beforeChange();
  // Set directly: litegraph's changeMode() does not know mode 4 (bypass).
  node.mode = node.mode === mode ? 0 : mode;
  node.graph?.afterChange();
  node.setDirtyCanvas(true, true);
}

const MIN_NODE_WIDTH = 240;
/** litegraph's widget insets (margins, arrows, label-value gap) around the label and value text. */
const WIDGET_CHROME = 90;
/** How much of a long value (a model file name) a new node shows beside its label. */
const VALUE_SHOWN = 110;
let measureCtx: CanvasRenderingContext2D | null = null;

/** The width at which every widget's label shows in full beside the start of its value. */
function widgetsWidth(node: LGraphNode): number {
  measureCtx ??= document.createElement("canvas").getContext("2d");
  if (!measureCtx || !node.widgets) return 0;
  measureCtx.font = `${LiteGraph.NODE_SUBTEXT_SIZE}px ${LiteGraph.NODE_FONT}`;
  let width = 0;
  for (const widget of node.widgets) {
    if (widget.type === "button" || (widget.options as { multiline?: boolean }).multiline) continue;
    const label = measureCtx.measureText(widget.label ?? widget.name).width;
    const value = measureCtx.measureText(String(widget.value ?? "")).width;
    width = Math.max(width, WIDGET_CHROME + label + Math.min(value, VALUE_SHOWN));
  }
  return Math.ceil(width);
}

const HOOKS = new WeakMap<typeof LGraphNode, NodeHooks>();
function hooksOf(node: LGraphNode): NodeHooks {
  return HOOKS.get(node.constructor as typeof LGraphNode)!;
}

function makeNodeClass(def: NodeDef, hooks: NodeHooks): typeof LGraphNode {
  const cls = class extends LGraphNode {
    static title = def.displayName;
    static type = def.name;
    static category = def.category;
    static loomDef = def;
    loom: NodeRunState = freshState();
    def: NodeDef = def;

    constructor(title?: string) {
      super(title ?? def.displayName, def.name);
      this.serialize_widgets = true;
      this.comfyClass = def.name;
      for (const input of def.inputs) {
        if (input.widget) addInputWidget(this, input);
        else this.addInput(input.name, input.type, { label: input.name, ...(input.required ? {} : { shape: 7 }) } as any);
      }
      for (const output of def.outputs) {
        this.addOutput(output.name, output.type, output.isList ? { shape: 6 } as any : undefined);
      }
      for (const input of def.inputs.filter((i) => i.type === "COMBO" && i.options.image_upload)) {
        addUploadButton(this as unknown as LoomNode, input.name, hooks);
      }
      const size = this.computeSize();
      this.setSize([Math.max(size[0], MIN_NODE_WIDTH, widgetsWidth(this)), size[1]]);
      this.strokeStyles.running = () =>
        (this as unknown as { loomRunning?: boolean }).loomRunning ? { color: "#3cdc5c", lineWidth: 3, padding: 6 } : undefined;
      addRunTimeBadge(this);
      hooks.nodeCreated(this as unknown as LoomNode);
    }

    onDrawForeground(ctx: CanvasRenderingContext2D): void {
      drawRunState(this as unknown as LoomNode, ctx);
    }

    onDblClick(): void {
      if (this.loom.imageUrls.length) hooks.openImage(this.loom.imageUrls);
    }

    onConfigure(info: ISerialisedNode): void {
      // Files list a slot for every widget; here an unlinked one is just its widget (removeInput renumbers links).
      for (let i = this.inputs.length - 1; i >= 0; i--) {
        const slot = this.inputs[i];
        if (slot.widget && slot.link == null && this.widgets?.some((w) => w.name === slot.widget!.name)) {
          this.removeInput(i);
        }
      }
      const values = info.widgets_values as unknown;
      if (values && !Array.isArray(values) && typeof values === "object" && this.widgets) {
        for (const widget of this.widgets) {
          if (widget.name in (values as object)) widget.value = (values as Record<string, any>)[widget.name];
        }
      }
    }

    getExtraMenuOptions() {
      return extraMenu(this as unknown as LoomNode);
    }
  };
  HOOKS.set(cls, hooks);
  return cls;
}

/**
 * A primitive feeds one literal to the widget inputs it is linked to (the ecosystem's PrimitiveNode). It takes the
 * widget of the first input it feeds; at queue time its value is written into those inputs, the node is not sent.
 */
export class PrimitiveNode extends LGraphNode {
  static title = "Primitive";
  static type = "PrimitiveNode";
  static category = "utils";
  isVirtualNode = true;
  /** The input whose widget this primitive took over (drives its "control after generate"). */
  adopted: InputDef | null = null;
  #saved: unknown[] | null = null;

  constructor(title?: string) {
    super(title ?? "Primitive", "PrimitiveNode");
    this.serialize_widgets = true;
    this.addOutput("connect to widget input", "*");
  }

  /** The literal this primitive feeds, from its widget or, before that exists, from the loaded file. */
  get value(): unknown {
    return this.widgets?.[0]?.value ?? this.#saved?.[0];
  }

  onConfigure(info: ISerialisedNode): void {
    this.#saved = Array.isArray(info.widgets_values) ? [...info.widgets_values] : null;
  }

  onConnectionsChange(): void {
    queueMicrotask(() => this.#adoptTargetWidget());
  }

  #adoptTargetWidget(): void {
    if (this.widgets?.length || !this.graph) return;
    for (const linkId of this.outputs[0]?.links ?? []) {
      const link = this.graph.getLink(linkId);
      const target = link && (this.graph.getNodeById(link.target_id) as LoomNode | null);
      const slot = target?.inputs[link!.target_slot];
      const input = target?.def?.inputs.find((i) => i.name === (slot?.widget?.name ?? slot?.name));
      if (!target || !input?.widget) continue;
      addInputWidget(this, input);
      this.adopted = input;
      const current = target.widgets?.find((w) => w.name === input.name)?.value;
      const values = this.#saved ?? [current];
      this.widgets!.forEach((w, i) => {
        if (values[i] !== undefined) w.value = values[i] as never;
      });
      this.outputs[0].type = input.type;
      this.outputs[0].name = input.name;
      this.setSize([Math.max(this.size[0], 240), this.computeSize()[1]]);
      this.setDirtyCanvas(true, true);
      return;
    }
  }
}

/** Front-end-only nodes: notes (plain text, and Markdown rendered; both edited in place) and a legacy reroute, none sent to the server. */
function registerFrontendNodes(): void {
  class NoteNode extends LGraphNode {
    static title = "Note";
    static type = "Note";
    static category = "utils";
    static domKind: DomKind = "text";
    isVirtualNode = true;
    constructor(title?: string) {
      const cls = new.target as typeof NoteNode;
      super(title ?? cls.title, cls.type);
      this.serialize_widgets = true;
      this.color = "#432";
      this.bgcolor = "#653";
      const w = this.addWidget("text", "text", "", () => {}, { multiline: true });
      makeDomWidget(w, cls.domKind);
      this.setSize([300, 110]);
    }
  }
  class RerouteNode extends LGraphNode {
    static title = "Reroute";
    static type = "Reroute";
    static category = "utils";
    isVirtualNode = true;
    constructor(title?: string) {
      super(title ?? "Reroute", "Reroute");
      this.addInput("", "*");
      this.addOutput("", "*");
      this.setSize([90, 30]);
    }
  }
  class MarkdownNoteNode extends NoteNode {
    static title = "Markdown Note";
    static type = "MarkdownNote";
    static domKind: DomKind = "markdown";
  }
  for (const cls of [NoteNode, MarkdownNoteNode, PrimitiveNode, RerouteNode]) register(cls.type, cls, "utils");
}

/** litegraph derives a class's category from a "/" in its type name; Loom's types carry the schema's category. */
function register(type: string, cls: typeof LGraphNode, category: string): void {
  LiteGraph.registerNodeType(type, cls);
  cls.category = category;
}

/** (Re)registers every node class; returns the parsed definitions by class name. */
export function registerNodes(info: ObjectInfo, canvas: LGraphCanvas, hooks: NodeHooks): Map<string, NodeDef> {
  const defs = new Map<string, NodeDef>();
  LiteGraph.clearRegisteredTypes();
  registerFrontendNodes();
  LiteGraph.isValidConnection = (a, b) => typesCompatible(a as string, b as string);
  for (const [name, nodeInfo] of Object.entries(info)) {
    const def = readNodeDef({ ...nodeInfo, name: nodeInfo.name ?? name });
    defs.set(name, def);
    for (const slot of [...def.inputs.filter((i) => !i.widget), ...def.outputs]) colorSlotType(canvas, slot.type);
    const cls = makeNodeClass(def, hooks);
    hooks.beforeRegister(cls, nodeInfo);
    register(name, cls, def.category);
  }
  return defs;
}

/** After a schema refresh: give existing combo widgets the new choices (model pickers). */
export function refreshCombos(nodes: LGraphNode[], defs: Map<string, NodeDef>): void {
  for (const node of nodes) {
    const def = defs.get(node.type);
    if (!def || !node.widgets) continue;
    for (const input of def.inputs) {
      if (input.type !== "COMBO") continue;
      const widget = node.widgets.find((w) => w.name === input.name && !isControlWidget(w));
      if (widget) widget.options.values = (input.choices ?? []).map(String);
    }
  }
}

export function inputSlotFor(node: LGraphNode, name: string): INodeInputSlot | undefined {
  return node.inputs.find((s) => s.name === name || s.widget?.name === name);
}
