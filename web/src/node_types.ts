// The node types the server offers: /object_info read and registered as litegraph classes, re-read when the
// model folders change (combos refreshed on the canvas), and the missing-model check that follows a load.

import type { Api, ModelProposal, ObjectInfo } from "./api";
import type { GraphState } from "./graph_state";
import { findMissingModels, type MissingModel, type MissingUse, MissingModelsPanel } from "./missing_models";
import { type NodeHooks, refreshCombos, registerNodes } from "./nodes";
import type { NodeDef } from "./schema";
import { registerExistingSubgraphTypes } from "./subgraphs";
import { toast } from "./ui";

export class NodeTypes {
  defs = new Map<string, NodeDef>();
  objectInfo: ObjectInfo = {};
  readonly missingModels = new MissingModelsPanel((changes) => this.#replaceModels(changes));
  /** Set by whoever shows validation errors: a model replacement clears them. */
  onModelsReplaced: () => void = () => {};

  constructor(
    private readonly api: Api,
    private readonly state: GraphState,
    private readonly hooks: NodeHooks,
    private readonly timings: Record<string, number>,
  ) {}

  async fetch(): Promise<void> {
    this.objectInfo = await this.api.objectInfo();
  }

  register(): void {
    this.defs = registerNodes(this.objectInfo, this.state.canvas, this.hooks);
    registerExistingSubgraphTypes(this.state.graph);
  }

  async refreshModels(): Promise<void> {
    try {
      await this.#reload();
    } catch (e) {
      toast(`Refresh failed: ${(e as Error).message}`, "error");
      return;
    }
    toast("Model lists refreshed");
  }

  /** Re-reads /object_info (the model folders) and updates the node types and the combos on the canvas. */
  async #reload(): Promise<void> {
    await this.fetch();
    this.register();
    refreshCombos(this.state.graph._nodes, this.defs);
    this.state.canvas.setDirty(true, true);
  }

  /**
   * Offers replacements for model files the canvas names but the server lacks (after fresh model lists);
   * `only` limits the check to some node id / input pairs. Resolves to the number of missing names.
   */
  async checkModels(only?: (nodeId: string, input: string) => boolean): Promise<number> {
    try {
      await this.#reload();
    } catch {
      // The lists already loaded still tell what is missing.
    }
    const missing = findMissingModels(this.state.graph._nodes, this.defs, only);
    if (missing.length) this.missingModels.show(missing, await this.#proposals(missing));
    this.timings.modelsChecked = performance.now();
    return missing.length;
  }

  /** The server's proposals for each missing name (hash match, name matches, demo stand-in); none when it has no
   * model index. */
  async #proposals(missing: MissingModel[]): Promise<Map<string, ModelProposal[]>> {
    const queries = missing.map((m) => ({ name: m.name, choices: m.choices, folder: m.folder, hash: m.hash }));
    try {
      const answer = await this.api.resolveModels(queries);
      return new Map(answer.models.map((m) => [m.name, m.proposals]));
    } catch {
      return new Map();
    }
  }

  #replaceModels(changes: { uses: MissingUse[]; file: string }[]): void {
    for (const { uses, file } of changes) {
      for (const { node, input } of uses) {
        const widget = node.widgets?.find((w) => w.name === input);
        if (!widget) continue;
        widget.value = file;
        widget.callback?.(file);
      }
    }
    this.onModelsReplaced();
    this.state.canvas.setDirty(true, true);
    this.state.changed();
  }
}
