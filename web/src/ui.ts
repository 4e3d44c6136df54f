// Small DOM pieces shared by the panels: element builder, toasts, the full-size image viewer and the
// runtime error dialog.

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<Record<string, string>> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

export function toast(message: string, kind: "info" | "error" = "info", ms = 4000): void {
  let host = document.querySelector<HTMLDivElement>(".loom-toasts");
  if (!host) {
    host = el("div", { class: "loom-toasts" });
    document.body.append(host);
  }
  const item = el("div", { class: `loom-toast ${kind}`, role: "status", text: message });
  host.append(item);
  window.setTimeout(() => item.remove(), ms);
}

/** Below this many pixels wide an image is scaled up with hard edges (a blurred 64 px preview helps nobody). */
const SMALL_IMAGE = 256;

/**
 * The image viewer: `urls[index]` scaled to fit the window (small images scaled up), with previous/next over
 * `urls` (buttons or arrow keys). Clicking the backdrop or Escape closes it.
 */
export function openLightbox(urls: string[], index = 0): void {
  document.querySelector(".loom-lightbox")?.remove();
  let current = Math.max(0, Math.min(index, urls.length - 1));
  const img = el("img", { alt: "output image" });
  const link = el("a", { target: "_blank", text: "open in new tab" });
  const counter = el("span", { class: "counter" });
  const prev = el("button", { class: "prev", text: "‹", title: "Previous (←)" });
  const next = el("button", { class: "next", text: "›", title: "Next (→)" });
  const show = (i: number) => {
    current = (i + urls.length) % urls.length;
    img.src = urls[current];
    link.href = urls[current];
    counter.textContent = `${current + 1} / ${urls.length}`;
  };
  img.onload = () => img.classList.toggle("pixelated", img.naturalWidth < SMALL_IMAGE);
  const box = el("div", { class: "loom-lightbox", role: "dialog" }, img, el("div", { class: "bar" }, prev, counter, next, link));
  prev.hidden = next.hidden = counter.hidden = urls.length < 2;
  prev.onclick = () => show(current - 1);
  next.onclick = () => show(current + 1);
  const onKey = (e: KeyboardEvent) => {
    if (!box.isConnected) return window.removeEventListener("keydown", onKey, true);
    if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      show(current + (e.key === "ArrowLeft" ? -1 : 1));
      e.stopPropagation();
    }
  };
  window.addEventListener("keydown", onKey, true);
  box.addEventListener("click", (e) => {
    if (e.target === box || e.target === img) box.remove();
  });
  show(current);
  document.body.append(box);
}

/** Escape: closes the viewer and the error dialog; true when there was one. */
export function closeOverlays(): boolean {
  const open = document.querySelectorAll(".loom-lightbox, .loom-error-dialog");
  open.forEach((e) => e.remove());
  return open.length > 0;
}

export interface RuntimeError {
  node_id: string;
  node_type: string;
  exception_message: string;
  exception_type: string;
  traceback: string[];
}

export function showRuntimeError(error: RuntimeError, title: string, onLocate: () => void): void {
  document.querySelector(".loom-error-dialog")?.remove();
  const trace = el("details", {}, el("summary", { text: "Traceback" }), el("pre", { text: (error.traceback ?? []).map((l) => (l.endsWith("\n") ? l : `${l}\n`)).join("") }));
  const locate = el("button", { text: "Show node" });
  const close = el("button", { text: "Close" });
  const dialog = el(
    "div",
    { class: "loom-error-dialog", role: "alertdialog" },
    el("h3", { text: `Error in ${title} (#${error.node_id}, ${error.node_type})` }),
    el("p", { class: "message", text: `${error.exception_type}: ${error.exception_message}` }),
    trace,
    el("div", { class: "buttons" }, locate, close),
  );
  locate.onclick = onLocate;
  close.onclick = () => dialog.remove();
  document.body.append(dialog);
}
