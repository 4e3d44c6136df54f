// Hover tooltips on the canvas: after a short rest the schema's tooltip of the widget, input or output under
// the pointer, or the node's description over its title.

import type { GraphState } from "./graph_state";
import type { LoomNode } from "./nodes";
import { el } from "./ui";

const DELAY_MS = 600;

function tooltipAt(state: GraphState, x: number, y: number): string | undefined {
  const node = state.graph.getNodeOnPos(x, y) as LoomNode | null;
  if (!node?.def) return undefined;
  const widget = node.getWidgetOnPos(x, y, true);
  if (widget) return widget.tooltip ?? node.def.inputs.find((i) => i.name === widget.name)?.tooltip;
  const input = node.getInputOnPos([x, y]);
  if (input) return node.def.inputs.find((i) => i.name === (input.widget?.name ?? input.name))?.tooltip;
  const output = node.getOutputOnPos([x, y]);
  if (output) return node.def.outputs[node.outputs.indexOf(output)]?.tooltip;
  if (y < node.pos[1]) return node.def.description || undefined;
  return undefined;
}

export function bindTooltips(state: GraphState): void {
  const tip = el("div", { class: "loom-tooltip" });
  tip.hidden = true;
  document.body.append(tip);
  let timer = 0;
  state.canvasEl.addEventListener("pointermove", (e) => {
    tip.hidden = true;
    window.clearTimeout(timer);
    timer = window.setTimeout(() => {
      const text = tooltipAt(state, state.canvas.graph_mouse[0], state.canvas.graph_mouse[1]);
      if (!text) return;
      tip.textContent = text;
      tip.style.left = `${e.clientX + 12}px`;
      tip.style.top = `${e.clientY + 12}px`;
      tip.hidden = false;
    }, DELAY_MS);
  });
  state.canvasEl.addEventListener("pointerleave", () => {
    window.clearTimeout(timer);
    tip.hidden = true;
  });
}
