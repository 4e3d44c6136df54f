// Reads the node schema of /object_info into plain descriptions: which inputs are widgets, in which order,
// and which carry an extra "control after generate" value. Shared by node registration and by the
// graph -> API conversion so both agree on widget order (DESIGN.md section 6).

import type { InputSpec, NodeInfo } from "./api";

export const WIDGET_TYPES = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"]);
export const CONTROL_VALUES = ["fixed", "increment", "decrement", "randomize"] as const;
export type ControlMode = (typeof CONTROL_VALUES)[number];
export const CONTROL_WIDGET = "control_after_generate";

export interface InputDef {
  name: string;
  /** Socket type; "COMBO" for a list of choices. */
  type: string;
  options: Record<string, any>;
  required: boolean;
  /** Choices of a combo. */
  choices?: unknown[];
  /** True when the input is edited by a widget (a literal), false for a socket. */
  widget: boolean;
  control: boolean;
  tooltip?: string;
}

export interface NodeDef {
  name: string;
  displayName: string;
  description: string;
  category: string;
  outputNode: boolean;
  inputs: InputDef[];
  outputs: { name: string; type: string; isList: boolean; tooltip?: string }[];
  deprecated: boolean;
  experimental: boolean;
  /** Where the node comes from: "Loom" for built-in nodes, else the node pack's folder name. */
  pack: string;
}

/** "custom_nodes.my_pack.nodes" -> "my_pack"; Loom's own modules ("nodes.sampling") -> "Loom". */
function packOf(module: string | undefined): string {
  const parts = (module ?? "").split(".");
  return parts[0] === "custom_nodes" && parts[1] ? parts[1] : "Loom";
}

function readInput(name: string, spec: InputSpec, required: boolean): InputDef {
  const [rawType, rawOptions] = Array.isArray(spec) ? spec : [spec as unknown as string, {}];
  const options: Record<string, any> = { ...(rawOptions ?? {}) };
  let type: string;
  let choices: unknown[] | undefined;
  if (Array.isArray(rawType)) {
    type = "COMBO";
    choices = rawType;
  } else {
    type = String(rawType);
    if (type === "COMBO") choices = Array.isArray(options.options) ? options.options : [];
  }
  const widget = WIDGET_TYPES.has(type) && !options.forceInput;
  return {
    name,
    type,
    options,
    required,
    choices,
    widget,
    control: widget && (type === "INT" || type === "COMBO") && Boolean(options.control_after_generate),
    tooltip: typeof options.tooltip === "string" ? options.tooltip : undefined,
  };
}

function ordered(names: string[] | undefined, specs: Record<string, InputSpec> | undefined): string[] {
  const keys = Object.keys(specs ?? {});
  if (!names) return keys;
  return [...names.filter((n) => keys.includes(n)), ...keys.filter((k) => !names.includes(k))];
}

export function readNodeDef(info: NodeInfo): NodeDef {
  const required = info.input?.required ?? {};
  const optional = info.input?.optional ?? {};
  const inputs = [
    ...ordered(info.input_order?.required, required).map((n) => readInput(n, required[n], true)),
    ...ordered(info.input_order?.optional, optional).map((n) => readInput(n, optional[n], false)),
  ];
  const outputs = (info.output ?? []).map((t, i) => ({
    name: info.output_name?.[i] ?? (Array.isArray(t) ? "COMBO" : String(t)),
    type: Array.isArray(t) ? "COMBO" : String(t),
    isList: Boolean(info.output_is_list?.[i]),
    tooltip: info.output_tooltips?.[i],
  }));
  return {
    name: info.name,
    displayName: info.display_name || info.name,
    description: info.description ?? "",
    category: info.category ?? "",
    outputNode: Boolean(info.output_node),
    inputs,
    outputs,
    deprecated: Boolean(info.deprecated),
    experimental: Boolean(info.experimental),
    pack: packOf(info.python_module),
  };
}

/** Default value of a widget input, as the ecosystem picks it when the schema gives none. */
export function defaultValue(input: InputDef): unknown {
  if ("default" in input.options) return input.options.default;
  switch (input.type) {
    case "INT":
    case "FLOAT":
      return Math.max(0, Number(input.options.min ?? 0));
    case "BOOLEAN":
      return false;
    case "STRING":
      return "";
    case "COMBO":
      return input.choices?.[0] ?? "";
    default:
      return null;
  }
}

/** The value after one "control after generate" step. */
export function nextControlledValue(value: number, mode: string, input: InputDef): number {
  const min = Number(input.options.min ?? 0);
  const max = Math.min(Number(input.options.max ?? 0xffffffffffff), Number.MAX_SAFE_INTEGER);
  const step = Number(input.options.step ?? 1) || 1;
  let next = value;
  if (mode === "increment") next = value + step;
  else if (mode === "decrement") next = value - step;
  else if (mode === "randomize") {
    const span = Math.min(max, 1125899906842624) - min;
    next = min + Math.floor(Math.random() * (span / step + 1)) * step;
  }
  return Math.min(max, Math.max(min, next));
}
