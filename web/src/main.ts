// Entry point: styles, then the app; a failed start (server down, bad schema) is shown instead of a blank page.

import "@comfyorg/litegraph/style.css";
import "./style.css";
import { App } from "./app";

const root = document.getElementById("app")!;
const app = new App(root);
app.start().catch((e: unknown) => {
  const message = e instanceof Error ? e.message : String(e);
  const banner = document.createElement("div");
  banner.className = "loom-fatal";
  banner.textContent = `Loom could not start: ${message}`;
  root.prepend(banner);
});
