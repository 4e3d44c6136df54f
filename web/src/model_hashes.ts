// Saved workflows record each model file's content hash, as current front ends do in a node's `properties.models`,
// so that a reader whose copy has another name or folder is offered it by content (the server's model index).

import type { LGraph } from "@comfyorg/litegraph";
import type { Api, IndexedModel } from "./api";
import { isModelFile, type RecordedModel, recordedModels } from "./missing_models";

interface SerializedNode {
  id: number | string;
  properties?: Record<string, unknown>;
}

/** Adds `properties.models` entries (name, folder, sha256) to the serialized nodes whose widgets name indexed files.
 * Files the server has not hashed yet are recorded without a hash; a server without an index changes nothing. */
export async function recordModelHashes(graph: LGraph, serialized: { nodes?: SerializedNode[] }, api: Api): Promise<void> {
  let files: IndexedModel[];
  try {
    files = (await api.modelIndex()).files;
  } catch {
    return;
  }
  const byName = new Map<string, IndexedModel>();
  for (const file of files) if (!byName.has(file.name)) byName.set(file.name, file);
  for (const entry of serialized.nodes ?? []) {
    const node = graph.getNodeById(entry.id as number);
    if (!node) continue;
    const models: RecordedModel[] = recordedModels(node).filter((m) => !byName.has(m.name));
    for (const widget of node.widgets ?? []) {
      const file = typeof widget.value === "string" && isModelFile(widget.value) ? byName.get(widget.value) : undefined;
      if (!file || models.some((m) => m.name === file.name)) continue;
      models.push({
        name: file.name,
        directory: file.folder,
        ...(file.sha256 ? { hash: file.sha256, hash_type: "SHA256" } : {}),
      });
    }
    if (models.length) entry.properties = { ...(entry.properties ?? {}), models };
  }
}
