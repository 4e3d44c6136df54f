"""`python main.py nodes`: every node type Loom knows, with the pack (or "builtin") it comes from."""

from __future__ import annotations

import argparse
import json

from cli.runtime import add_common_arguments, runtime_settings
from engine.packs import PackSummary
from runtime.build import build_runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--pack", help="only the nodes of this pack (or 'builtin')")
    parser.add_argument("--json", action="store_true", help="print JSON: nodes, and the pack load summaries")


def run(args: argparse.Namespace) -> int:
    runtime = build_runtime(runtime_settings(args))
    registry = runtime.registry
    rows = [
        {
            "class_type": spec.class_type,
            "display_name": spec.display_name,
            "category": spec.category,
            "source": registry.source(spec.class_type) or "builtin",
        }
        for spec in sorted(registry, key=lambda s: (s.category, s.class_type))
    ]
    if args.pack:
        rows = [row for row in rows if row["source"] == args.pack]
    if args.json:
        packs = [p.to_json() for p in runtime.packs]
        print(json.dumps({"nodes": rows, "packs": packs}, indent=2))
        return 0
    width = max([len(r["class_type"]) for r in rows] + [10])
    source_width = max([len(r["source"]) for r in rows] + [6])
    print(f"{'node':<{width}}  {'source':<{source_width}}  category")
    for row in rows:
        print(f"{row['class_type']:<{width}}  {row['source']:<{source_width}}  {row['category']}")
    print(f"{len(rows)} node types")
    for pack in runtime.packs:
        print(pack_line(pack))
    return 0


def pack_line(pack: PackSummary) -> str:
    """One pack: "N of M nodes" and the classes it could not register, or why it did not load."""
    if pack.status != "ok":
        return f"pack {pack.name}: {pack.status}" + (f" ({pack.error.splitlines()[0]})" if pack.error else "")
    line = f"pack {pack.name}: {pack.count}"
    if pack.rejected:
        line += "; rejected: " + "; ".join(f"{r.class_type} ({r.reason})" for r in pack.rejected)
    return line
