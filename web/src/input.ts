// Input that is not a button: keyboard shortcuts, the change tracking that turns gestures into undo steps,
// and the hint shown when litegraph refuses a link between incompatible types.

import type { GraphState } from "./graph_state";
import { toggleMode, typesCompatible } from "./nodes";
import { comboOf } from "./settings";
import { toast } from "./ui";

export interface Shortcuts {
  queue(): void;
  save(): void;
  open(): void;
  /** Escape: closes whatever menu, dialog or viewer is open. */
  escape(): void;
  /** Opens the node search. */
  search(): void;
}

/** Every gesture that may have changed the graph ends in one of these; the undo stack diffs snapshots. */
export function trackChanges(state: GraphState): void {
  // Capturing on window: litegraph stops some events at the canvas; the timeout lets it finish first.
  for (const type of ["pointerup", "keyup", "change"]) {
    window.addEventListener(type, () => window.setTimeout(() => state.changed(), 0), true);
  }
  const dialogObserver = new MutationObserver(() => window.setTimeout(() => state.changed(), 0));
  dialogObserver.observe(document.body, { childList: true });
}

/** Keyboard shortcuts: `keys()` maps a combo ("Ctrl+Enter", see settings.ts) to an action name. */
export function bindShortcuts(state: GraphState, shortcuts: Shortcuts, keys: () => Map<string, string>): void {
  const actions: Record<string, () => void> = {
    queue: () => shortcuts.queue(),
    save: () => shortcuts.save(),
    open: () => shortcuts.open(),
    search: () => shortcuts.search(),
    undo: () => state.undo?.undo(),
    redo: () => state.undo?.redo(),
    mute: () => state.forSelected((n) => toggleMode(n, 2)),
    bypass: () => state.forSelected((n) => toggleMode(n, 4)),
    group: () => state.groupSelected(),
  };
  window.addEventListener(
    "keydown",
    (e) => {
      const target = e.target as HTMLElement;
      if (e.key === "Escape") {
        shortcuts.escape();
        if (target instanceof HTMLTextAreaElement) target.blur();
        return;
      }
      const combo = comboOf(e);
      const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) && target.id !== "graph-canvas";
      let action = keys().get(combo);
      // Ctrl+Shift+Z redoes too, as in most editors.
      if (!action && combo === "Ctrl+Shift+Z") action = "redo";
      if (!action || (typing && action !== "queue")) return;
      actions[action]?.();
      e.preventDefault();
      e.stopPropagation();
    },
    true,
  );
}

/** litegraph silently refuses a link between incompatible types; say why (runs before it handles the drop). */
export function bindLinkHints(state: GraphState): void {
  const { canvas, canvasEl, graph } = state;
  // On window, capturing: litegraph stops the event at the canvas before later listeners there see it.
  window.addEventListener(
    "pointerup",
    (e) => {
      if (e.target !== canvasEl) return;
      const connector = canvas.linkConnector;
      const from = connector.renderLinks[0]?.fromSlot;
      if (!connector.isConnecting || !from) return;
      const [x, y] = canvas.convertEventToCanvasOffset(e);
      const node = graph.getNodeOnPos(x, y);
      if (!node) return;
      const toInput = connector.state.connectingTo === "input";
      const slot = toInput ? node.getInputOnPos([x, y]) : node.getOutputOnPos([x, y]);
      if (!slot) return;
      const [outType, inType] = toInput ? [from.type, slot.type] : [slot.type, from.type];
      if (!typesCompatible(String(outType), String(inType))) {
        toast(`Cannot connect ${String(outType)} to ${slot.name} (${String(inType)})`, "error");
      }
    },
    true,
  );
}
