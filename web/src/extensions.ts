// Front-end extensions of node packs (WEB_DIRECTORY): `GET /extensions` lists script URLs that are loaded as
// ES modules. A module registers hooks through `window.loom.registerExtension({...})`.

import type { LGraphNode } from "@comfyorg/litegraph";
import type { Api } from "./api";

export interface Extension {
  name: string;
  /** Before node classes are registered. */
  init?(app: unknown): void | Promise<void>;
  /** Before a node class is registered (adjust its prototype). */
  beforeRegisterNodeDef?(nodeClass: typeof LGraphNode, nodeInfo: unknown, app: unknown): void;
  /** For every node instance created on the canvas. */
  nodeCreated?(node: LGraphNode, app: unknown): void;
  /** Once, after the canvas is ready. */
  setup?(app: unknown): void | Promise<void>;
}

export class Extensions {
  readonly list: Extension[] = [];

  register(extension: Extension): void {
    if (!extension?.name) throw new Error("an extension needs a name");
    this.list.push(extension);
  }

  /** Imports every extension script; a failing one is reported and skipped. */
  async load(api: Api): Promise<string[]> {
    let urls: string[] = [];
    try {
      urls = await api.extensions();
    } catch {
      return [];
    }
    const failed: string[] = [];
    await Promise.all(
      urls.map(async (url) => {
        try {
          await import(/* @vite-ignore */ url);
        } catch (e) {
          console.warn(`extension ${url} failed to load`, e);
          failed.push(url);
        }
      }),
    );
    return failed;
  }

  call<K extends "init" | "beforeRegisterNodeDef" | "nodeCreated" | "setup">(hook: K, ...args: unknown[]): void {
    for (const extension of this.list) {
      try {
        (extension[hook] as ((...a: unknown[]) => void) | undefined)?.(...args);
      } catch (e) {
        console.warn(`extension ${extension.name}: ${hook} failed`, e);
      }
    }
  }
}
