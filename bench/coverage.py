"""How much of the reference engine's core a fresh Loom offers: sampler names / 42, scheduler names / 9, core
node classes / total, read from the lists in bench/data/ (one name a line) against Loom's own /object_info.

    python bench/coverage.py [--missing]

Another list is one more file in bench/data/ and one more line in REPORTS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA = Path(__file__).parent / "data"


def reference_names(filename: str) -> list[str]:
    """The names in a data file, in order, without blank lines and '#' comments."""
    lines = (line.split("#", 1)[0].strip() for line in (DATA / filename).read_text().splitlines())
    return [line for line in lines if line]


def _combo(info: dict[str, Any], class_type: str, input_name: str) -> set[str]:
    entry = info.get(class_type, {}).get("input", {}).get("required", {}).get(input_name)
    return set(entry[0]) if entry and isinstance(entry[0], list) else set()


def offered_samplers(info: dict[str, Any]) -> set[str]:
    """Sampler names KSampler offers and the sampler table can run."""
    from diffusion.samplers import SAMPLERS

    return _combo(info, "KSampler", "sampler_name") & set(SAMPLERS)


def offered_schedulers(info: dict[str, Any]) -> set[str]:
    from diffusion.schedulers import SCHEDULERS

    return _combo(info, "KSampler", "scheduler") & set(SCHEDULERS)


def registered_classes(info: dict[str, Any]) -> set[str]:
    return set(info)


# (label, data file, what Loom offers)
REPORTS: list[tuple[str, str, Callable[[dict[str, Any]], set[str]]]] = [
    ("sampler names", "reference_samplers.txt", offered_samplers),
    ("scheduler names", "reference_schedulers.txt", offered_schedulers),
    ("core node classes", "reference_core_classes.txt", registered_classes),
]


def object_info() -> dict[str, Any]:
    import nodes
    from engine.registry import NodeRegistry

    registry = NodeRegistry(None)
    nodes.register_builtin(registry)
    return registry.object_info()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--missing", action="store_true", help="list the names Loom lacks")
    args = parser.parse_args()
    info = object_info()
    for label, filename, offered in REPORTS:
        wanted = reference_names(filename)
        have = offered(info)
        missing = [name for name in wanted if name not in have]
        print(f"{label}: {len(wanted) - len(missing)} / {len(wanted)}")
        if args.missing and missing:
            print("  missing: " + ", ".join(missing))


if __name__ == "__main__":
    main()
