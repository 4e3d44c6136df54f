// The workflow a first visit shows: txt2img on the first checkpoint of the loader's combo (the embedded demo
// model on a fresh install), built from the registered classes so it always matches the server's schema.

import { type LGraph, type LGraphNode, LiteGraph } from "@comfyorg/litegraph";

function add(graph: LGraph, type: string, pos: [number, number], widgets: Record<string, unknown> = {}): LGraphNode | null {
  const node = LiteGraph.createNode(type);
  if (!node) return null;
  node.pos = pos;
  graph.add(node);
  for (const [name, value] of Object.entries(widgets)) {
    const widget = node.widgets?.find((w) => w.name === name);
    if (widget) widget.value = value as never;
  }
  return node;
}

function link(from: LGraphNode | null, output: string, to: LGraphNode | null, input: string): void {
  if (!from || !to) return;
  from.connect(from.findOutputSlot(output), to, to.findInputSlot(input));
}

export function buildDefaultWorkflow(graph: LGraph): void {
  graph.clear();
  const ckpt = add(graph, "CheckpointLoaderSimple", [40, 180]);
  const positive = add(graph, "CLIPTextEncode", [420, 40], {
    text: "a watercolor painting of a lighthouse on a cliff at sunrise",
  });
  const negative = add(graph, "CLIPTextEncode", [420, 300], { text: "blurry, low quality" });
  const latent = add(graph, "EmptyLatentImage", [420, 540], { width: 512, height: 512, batch_size: 1 });
  const sampler = add(graph, "KSampler", [820, 120], { seed: 42, steps: 20, cfg: 7 });
  const decode = add(graph, "VAEDecode", [1180, 120]);
  const save = add(graph, "SaveImage", [1420, 120]);
  ckpt?.setSize([320, ckpt.size[1]]);
  if (positive) positive.title = "Positive prompt";
  if (negative) negative.title = "Negative prompt";
  link(ckpt, "MODEL", sampler, "model");
  link(ckpt, "CLIP", positive, "clip");
  link(ckpt, "CLIP", negative, "clip");
  link(positive, "CONDITIONING", sampler, "positive");
  link(negative, "CONDITIONING", sampler, "negative");
  link(latent, "LATENT", sampler, "latent_image");
  link(sampler, "LATENT", decode, "samples");
  link(ckpt, "VAE", decode, "vae");
  link(decode, "IMAGE", save, "images");
  if (save) save.setSize([Math.max(save.size[0], 320), 360]);
  // Node order as loading computes it, so a saved default workflow reloads identically.
  graph.updateExecutionOrder();
}
