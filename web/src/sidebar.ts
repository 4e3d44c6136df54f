// The sidebar: one tab per panel (the run queue with its images, history, saved workflows); the chosen tab is
// remembered for the session.

import { el } from "./ui";

const TAB_KEY = "loom.sidebarTab";

export interface SidebarTab {
  id: string;
  label: string;
  element: HTMLElement;
  /** Called each time the tab is shown (e.g. to re-read a list from the server). */
  shown?: () => void;
}

export function buildSidebar(tabs: SidebarTab[]): HTMLElement {
  const bar = el("nav", { class: "sidebar-tabs", role: "tablist" });
  const body = el("div", { class: "sidebar-body" });
  const show = (id: string) => {
    for (const tab of tabs) {
      tab.element.hidden = tab.id !== id;
      bar.querySelector(`[data-tab="${tab.id}"]`)?.classList.toggle("active", tab.id === id);
    }
    sessionStorage.setItem(TAB_KEY, id);
    tabs.find((t) => t.id === id)?.shown?.();
  };
  for (const tab of tabs) {
    const button = el("button", { role: "tab", "data-tab": tab.id, text: tab.label, id: `tab-${tab.id}` });
    button.onclick = () => show(tab.id);
    bar.append(button);
    body.append(tab.element);
  }
  const remembered = sessionStorage.getItem(TAB_KEY);
  show(tabs.some((t) => t.id === remembered) ? remembered! : tabs[0].id);
  return el("aside", {}, bar, body);
}
