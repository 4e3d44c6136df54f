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

export function openLightbox(url: string): void {
  const img = el("img", { src: url, alt: "output image" });
  const link = el("a", { href: url, target: "_blank", text: "open in new tab" });
  const box = el("div", { class: "loom-lightbox", role: "dialog" }, img, link);
  box.addEventListener("click", (e) => {
    if (e.target !== link) box.remove();
  });
  document.body.append(box);
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
