"""The layering of Loom's top-level packages, read from the imports themselves (with `ast`, lazy imports included):
each package imports only packages of lower layers, the engine only the standard library, node modules no other
node module, and docs/architecture.md shows the graph as it is."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import nodes

ROOT = Path(__file__).resolve().parents[1]

# Lower layers first; a package may import only packages of a lower layer.
LAYERS: dict[str, int] = {
    "engine": 0,
    "diffusion": 0,
    "formats": 1,
    "catalog": 2,
    "nodes": 2,
    "compat": 3,
    "server": 4,
    "runtime": 4,
    "scaleout": 5,
    "cli": 6,
}
# Lower, yet refused: the server gets nodes and models only through what the composition root (runtime/) built.
FORBIDDEN = {("server", "nodes"), ("server", "diffusion")}
# Anything may import these; they import anything.
OUTSIDE = {"tests", "bench"}


def packages() -> list[str]:
    """Every top-level Python package of the checkout."""
    return sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file())


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every absolute import in a file, at any depth (lazy and TYPE_CHECKING ones too)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def package_graph() -> dict[str, set[str]]:
    """Package -> the other Loom packages it imports."""
    names = set(packages())
    graph: dict[str, set[str]] = {name: set() for name in names}
    for name in names:
        for path in python_files(name):
            for _, module in imported_modules(path):
                top = module.partition(".")[0]
                if top in names and top != name:
                    graph[name].add(top)
    return graph


def test_every_package_has_a_layer() -> None:
    unplaced = set(packages()) - set(LAYERS) - OUTSIDE
    assert not unplaced, f"place {sorted(unplaced)} in LAYERS here and in docs/architecture.md"


def test_packages_import_only_lower_layers() -> None:
    wrong = []
    for name in LAYERS:
        for path in python_files(name):
            for line, module in imported_modules(path):
                target = module.partition(".")[0]
                if target not in LAYERS or target == name:
                    continue
                if LAYERS[target] >= LAYERS[name] or (name, target) in FORBIDDEN:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_the_package_graph_has_no_cycle() -> None:
    graph = package_graph()
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", "import cycle: " + " -> ".join([*trail, name])
        state[name] = "open"
        for target in sorted(graph[name]):
            visit(target, [*trail, name])
        state[name] = "done"

    for name in sorted(graph):
        visit(name, [])


def test_the_engine_imports_only_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {"engine"}
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in python_files("engine")
        for line, module in imported_modules(path)
        if module.partition(".")[0] not in allowed
    ]
    assert not wrong, "engine/ must stay free of torch, aiohttp and the rest:\n" + "\n".join(wrong)


def test_node_modules_import_no_other_node_module() -> None:
    """Helpers node modules share live in helper modules (nodes.shared, nodes.files, ...), never in a node module."""
    node_modules = set(nodes.BUILTIN_MODULES)
    wrong = []
    for name in sorted(node_modules):
        path = ROOT / (name.replace(".", "/") + ".py")
        for line, module in imported_modules(path):
            if module in node_modules and module != name:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not wrong, "move what they share into a helper module:\n" + "\n".join(wrong)


def test_docs_show_the_import_graph_as_it_is() -> None:
    """docs/architecture.md lists `package -> imports` in its import-graph block; it must match the code."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- import-graph -->\n```text\n(.*?)```", text, re.S)
    assert block is not None, "docs/architecture.md lost its import-graph block"
    documented = {}
    for line in block.group(1).strip().splitlines():
        name, _, targets = line.partition("->")
        documented[name.strip()] = {t.strip() for t in targets.split(",") if t.strip() and t.strip() != "(nothing)"}
    actual = {name: targets for name, targets in package_graph().items() if name in LAYERS}
    assert documented == actual


def test_nodes_ask_the_typed_environment_and_get_their_context_by_annotation() -> None:
    """No `getattr(env, ...)` probes on the NodeEnvironment, and no `ctx: NodeContext = None` stand-ins: a node
    declares `*, ctx: NodeContext` and the native API injects it."""
    wrong = []
    for package in ("nodes", "compat"):
        for path in python_files(package):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
                    target = node.args[0] if node.args else None
                    name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
                    if name == "env":
                        wrong.append(f"{where}: getattr on the environment")
                if isinstance(node, ast.arguments):
                    params = [*node.posonlyargs, *node.args, *node.kwonlyargs]
                    defaults = [None] * (len(node.posonlyargs) + len(node.args) - len(node.defaults))
                    defaults += [*node.defaults, *node.kw_defaults]
                    for param, default in zip(params, defaults, strict=True):
                        annotated = isinstance(param.annotation, ast.Name) and param.annotation.id == "NodeContext"
                        if annotated and isinstance(default, ast.Constant) and default.value is None:
                            wrong.append(f"{path.relative_to(ROOT)}:{param.lineno}: {param.arg}: NodeContext = None")
    assert not wrong, "\n".join(wrong)
