// Per-node run times: the history entry's `timings.nodes` (when each node started and ended) put on the canvas
// as a badge beside each node's title after a run, and listed per job in the history panel.

import { LGraphBadge, type LGraph, type LGraphNode, SubgraphNode } from "@comfyorg/litegraph";
import { nodePath } from "./node_path";

/** One node's entry in a history entry's `timings.nodes` (epoch ms; `ended` null when the node was stopped). */
export interface NodeTiming {
  started: number;
  ended: number | null;
  cached: boolean;
}

/** A node's part in the last run: served from the cache, or how long it ran. */
export type RunTime = "cached" | number;

interface TimedNode extends LGraphNode {
  loomRunTime?: RunTime;
}

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function runTime(node: LGraphNode): RunTime | undefined {
  return (node as TimedNode).loomRunTime;
}

/** Adds the badge that shows a node's last run time (or "cached") beside its title. */
export function addRunTimeBadge(node: LGraphNode): void {
  const badge = new LGraphBadge({ text: "", fgColor: "#111", bgColor: "#6cc24a" });
  node.badges.push(() => {
    const time = runTime(node);
    badge.text = time === undefined ? "" : time === "cached" ? "cached" : formatDuration(time);
    badge.bgColor = time === "cached" ? "#6cc24a" : "#8ab4f8";
    return badge;
  });
}

/** Forgets the last run's times, in the graph and every subgraph it shows (a new run starts). */
export function clearRunTimes(graph: LGraph): void {
  for (const node of graph._nodes) {
    delete (node as TimedNode).loomRunTime;
    if (node instanceof SubgraphNode) clearRunTimes(node.subgraph);
  }
}

/** Marks nodes served from the cache (`execution_cached`): their badge says so until the next run. */
export function markCached(graph: LGraph, ids: string[]): void {
  for (const id of ids) for (const node of nodePath(graph, id)) (node as TimedNode).loomRunTime ??= "cached";
}

/**
 * Puts a finished job's node times on the canvas: each node that ran gets its time, a subgraph node the time of
 * its inner nodes together, a node served from the cache "cached".
 */
export function applyRunTimes(graph: LGraph, timings: Record<string, NodeTiming>): void {
  clearRunTimes(graph);
  for (const [id, timing] of Object.entries(timings)) {
    const path = nodePath(graph, id);
    if (!path.length) continue;
    if (timing.cached) {
      for (const node of path) (node as TimedNode).loomRunTime ??= "cached";
      continue;
    }
    if (timing.ended == null) continue;
    const ms = timing.ended - timing.started;
    const leaf = path[path.length - 1] as TimedNode;
    leaf.loomRunTime = ms;
    // Each subgraph node above it: its inner nodes' times together ("cached" until one of them ran).
    for (const node of path.slice(0, -1) as TimedNode[]) {
      node.loomRunTime = (typeof node.loomRunTime === "number" ? node.loomRunTime : 0) + ms;
    }
  }
}

/** One job's nodes by run time, longest first, for the history panel: [id, ms or "cached"]. */
export function jobNodeTimes(timings: Record<string, NodeTiming>): [string, RunTime][] {
  const rows: [string, RunTime][] = Object.entries(timings)
    .filter(([, t]) => t.cached || t.ended != null)
    .map(([id, t]) => [id, t.cached ? "cached" : t.ended! - t.started]);
  return rows.sort((a, b) => (b[1] === "cached" ? -1 : b[1]) - (a[1] === "cached" ? -1 : a[1]));
}
