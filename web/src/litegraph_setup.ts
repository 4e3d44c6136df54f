// Loom's settings and small corrections on top of litegraph, in one place: labels kept whole (values are cut
// first), and no text that needs an emoji or icon font (a machine without one draws missing-glyph boxes):
// the pin marker is drawn, the "new" badge is dropped from menu entries, the subgraph button gets a plain arrow.

import { type IContextMenuValue, LGraphCanvas, LGraphGroup, LGraphNode, LiteGraph } from "@comfyorg/litegraph";

/** Emoji and private-use (icon font) characters: not in the fonts a plain Linux desktop has. */
export const NEEDS_SPECIAL_FONT = /[\p{Extended_Pictographic}\u{E000}-\u{F8FF}]/u;
/** The subgraph node's "open" title button: an arrow every text font has. */
export const OPEN_SUBGRAPH_GLYPH = "⇗";

function plainMenu<T extends IContextMenuValue<unknown> | null>(options: T[]): T[] {
  return options.map((o) => (o && typeof o.content === "string" && NEEDS_SPECIAL_FONT.test(o.content) ? { ...o, content: o.content.replace(NEEDS_SPECIAL_FONT, "").trim() } : o));
}

/** A map pin: a round head on a short needle, in the title colour. */
function drawPin(ctx: CanvasRenderingContext2D, x: number, y: number, color: string): void {
  ctx.save();
  ctx.fillStyle = color;
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  ctx.arc(x, y - 3, 3.5, 0, Math.PI * 2);
  ctx.fill();
  ctx.beginPath();
  ctx.moveTo(x, y);
  ctx.lineTo(x, y + 6);
  ctx.stroke();
  ctx.restore();
}

/** Runs litegraph's `draw` with the pin flag off (it would append an emoji), then draws the pin itself. */
function withPinDrawn<A extends unknown[]>(draw: (this: any, ...args: A) => void, at: (self: any) => [number, number]) {
  return function (this: { flags: { pinned?: boolean } }, ...args: A): void {
    const pinned = this.flags.pinned;
    if (!pinned) return draw.apply(this, args);
    this.flags.pinned = false;
    try {
      draw.apply(this, args);
    } finally {
      this.flags.pinned = pinned;
    }
    const ctx = args.find((a): a is CanvasRenderingContext2D => a instanceof CanvasRenderingContext2D);
    if (ctx) drawPin(ctx, ...at(this), LiteGraph.NODE_TITLE_COLOR);
  };
}

let installed = false;

export function setUpLitegraph(): void {
  if (installed) return;
  installed = true;
  LiteGraph.release_link_on_empty_shows_menu = true;
  LiteGraph.middle_click_slot_add_default_node = true;
  // A cut-off value is still readable; a cut-off label is not.
  LiteGraph.truncateWidgetValuesFirst = true;
  const nodeMenu = LGraphCanvas.prototype.getNodeMenuOptions;
  LGraphCanvas.prototype.getNodeMenuOptions = function (node) {
    return plainMenu(nodeMenu.call(this, node));
  };
  const canvasMenu = LGraphCanvas.prototype.getCanvasMenuOptions;
  LGraphCanvas.prototype.getCanvasMenuOptions = function () {
    return plainMenu(canvasMenu.call(this));
  };
  const title = LiteGraph.NODE_TITLE_HEIGHT;
  LGraphNode.prototype.drawTitleText = withPinDrawn(LGraphNode.prototype.drawTitleText, (node: LGraphNode) => [node.size[0] - title * 0.6, -title * 0.5]);
  LGraphGroup.prototype.draw = withPinDrawn(LGraphGroup.prototype.draw, (group: LGraphGroup) => [group.pos[0] + group.size[0] - 14, group.pos[1] + 14]);
}
