"""API-format workflows turned into canvas documents: nodes laid out in columns by depth, widgets per the registry."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from engine.errors import ErrorType
from engine.registry import NodeRegistry
from engine.spec import InputSpec
from engine.workflow import is_api_link
from formats.canvas import CONTROL_VALUES, has_control, map_widget_values, socket_inputs, widget_inputs
from formats.problems import Problem, WorkflowFileError, unknown_node_type

COLUMN_WIDTH = 420
ROW_GAP = 40
NODE_WIDTH = 340
SLOT_HEIGHT = 24
CANVAS_VERSION = 0.4


def _unwrap(value: Any) -> Any:
    if isinstance(value, Mapping) and set(value) == {"__value__"}:
        return value["__value__"]
    return value


def widget_slot(widget: InputSpec) -> dict[str, Any]:
    """The input slot a canvas node lists for a widget (linked when the widget is converted to an input)."""
    return {"name": widget.name, "type": widget.type, "widget": {"name": widget.name}, "link": None}


def add_widget_slots(canvas: Mapping[str, Any], registry: NodeRegistry) -> dict[str, Any]:
    """A copy of a canvas whose nodes of known types list a slot for each widget that has none yet (appended, so
    the slots links point at keep their numbers)."""
    out = copy.deepcopy(dict(canvas))
    for node in out.get("nodes") or []:
        kind = node.get("type") if isinstance(node, Mapping) else None
        spec = registry.get(kind) if isinstance(kind, str) else None
        if spec is None:
            continue
        inputs = node.setdefault("inputs", [])
        listed = {(i.get("widget") or {}).get("name") or i.get("name") for i in inputs if isinstance(i, Mapping)}
        inputs.extend(widget_slot(w) for w in widget_inputs(spec) if w.name not in listed)
    return out


def _canvas_ids(api: Mapping[str, Any]) -> dict[str, int]:
    """Canvas node ids are integers: numeric API ids keep their number, others get the next free ones."""
    ids: dict[str, int] = {}
    for key in api:
        if str(key).isdigit():
            ids[str(key)] = int(key)
    next_id = max(ids.values(), default=0) + 1
    for key in api:
        if str(key) not in ids:
            ids[str(key)] = next_id
            next_id += 1
    return ids


def _depths(api: Mapping[str, Any]) -> dict[str, int]:
    """Column of each node: one more than its deepest linked source (0 for nodes without links)."""
    depths: dict[str, int] = {}

    def depth(node_id: str, visiting: frozenset[str]) -> int:
        if node_id in depths:
            return depths[node_id]
        if node_id in visiting or node_id not in api:
            return 0
        inputs = api[node_id].get("inputs") or {}
        sources = [str(v[0]) for v in inputs.values() if is_api_link(v)]
        result = 1 + max((depth(s, visiting | {node_id}) for s in sources), default=-1)
        depths[node_id] = result
        return result

    for key in api:
        depth(str(key), frozenset())
    return depths


def api_to_canvas(api: Mapping[str, Any], registry: NodeRegistry) -> dict[str, Any]:
    """A canvas document for an API-format workflow; raises WorkflowFileError listing every problem."""
    problems: list[Problem] = []
    nodes_in = {str(k): v for k, v in api.items()}
    for node_id, entry in nodes_in.items():
        if not isinstance(entry, Mapping):
            problems.append(Problem(ErrorType.INVALID_PROMPT, f"node {node_id}: expected an object", node_id=node_id))
        elif not isinstance(entry.get("class_type"), str) or entry["class_type"] not in registry:
            problems.append(unknown_node_type(node_id, entry.get("class_type")))
    if problems:
        raise WorkflowFileError(problems)

    ids = _canvas_ids(nodes_in)
    depths = _depths(nodes_in)
    order = sorted(nodes_in, key=lambda k: (depths[k], ids[k]))
    nodes: dict[str, dict[str, Any]] = {}
    pending: list[tuple[str, int, str, str]] = []  # (target, slot, source id, value) to link once all nodes exist
    for index, node_id in enumerate(order):
        entry = nodes_in[node_id]
        spec = registry.get(entry["class_type"])
        assert spec is not None
        values = entry.get("inputs") or {}
        widgets = widget_inputs(spec)
        widget_names = {w.name for w in widgets}
        inputs: list[dict[str, Any]] = [{"name": i.name, "type": i.type, "link": None} for i in socket_inputs(spec)]
        widgets_values: list[Any] = []
        sockets = len(inputs)
        for w in widgets:
            # Current front ends list every widget as an input slot too; client libraries read widget names there.
            inputs.append(widget_slot(w))
            value = values.get(w.name, w.default)
            if is_api_link(value):
                value = w.default
            widgets_values.append(_unwrap(value))
            if has_control(w):
                widgets_values.append("fixed")
        for name, value in values.items():
            if not is_api_link(value):
                continue
            slot = next((i for i, inp in enumerate(inputs) if inp["name"] == name), None)
            if slot is None and name not in widget_names:
                inputs.append({"name": name, "type": "*", "link": None})
                slot = len(inputs) - 1
            if slot is not None:
                pending.append((node_id, slot, str(value[0]), str(value[1])))
        node: dict[str, Any] = {
            "id": ids[node_id],
            "type": spec.class_type,
            "pos": [0, 0],
            "size": [NODE_WIDTH, 46 + SLOT_HEIGHT * (max(sockets, len(spec.outputs)) + len(widgets))],
            "flags": {},
            "order": index,
            "mode": 0,
            "inputs": inputs,
            "outputs": [
                {"name": o.name, "type": o.type, "links": [], "slot_index": k} for k, o in enumerate(spec.outputs)
            ],
            "properties": {"Node name for S&R": spec.class_type},
            "widgets_values": widgets_values,
        }
        title = (entry.get("_meta") or {}).get("title")
        if title:
            node["title"] = title
        nodes[node_id] = node

    links: list[list[Any]] = []
    for target, slot, source, out_index in pending:
        origin = nodes.get(source)
        out = int(out_index)
        if origin is None or out >= len(origin["outputs"]):
            problems.append(
                Problem(
                    ErrorType.INVALID_PROMPT,
                    f"node {target}: input {nodes[target]['inputs'][slot]['name']!r} links to missing "
                    f"output {out} of node {source}",
                    node_id=target,
                    class_type=nodes[target]["type"],
                    input_name=nodes[target]["inputs"][slot]["name"],
                )
            )
            continue
        link_id = len(links) + 1
        link_type = origin["outputs"][out]["type"]
        links.append([link_id, origin["id"], out, nodes[target]["id"], slot, link_type])
        origin["outputs"][out]["links"].append(link_id)
        nodes[target]["inputs"][slot]["link"] = link_id
    if problems:
        raise WorkflowFileError(problems)

    _lay_out(nodes, depths)
    return {
        "last_node_id": max(ids.values(), default=0),
        "last_link_id": len(links),
        "nodes": list(nodes.values()),
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": CANVAS_VERSION,
    }


def _lay_out(nodes: Mapping[str, dict[str, Any]], depths: Mapping[str, int]) -> None:
    """Columns by depth, nodes stacked top to bottom in each column."""
    column_y: dict[int, int] = {}
    for node_id, node in nodes.items():
        col = depths[node_id]
        y = column_y.get(col, 0)
        node["pos"] = [col * COLUMN_WIDTH, y]
        column_y[col] = y + node["size"][1] + ROW_GAP


def update_canvas_widgets(canvas: Mapping[str, Any], api: Mapping[str, Any], registry: NodeRegistry) -> dict[str, Any]:
    """A copy of a canvas whose top-level nodes' widget values are those of the API workflow (after `--set`, say),
    so an image embeds the canvas that made it; everything else in the canvas is kept as it was."""
    out = copy.deepcopy(dict(canvas))
    for node in out.get("nodes") or []:
        entry = api.get(str(node.get("id"))) if isinstance(node, Mapping) else None
        spec = registry.get(node.get("type")) if entry is not None else None
        if spec is None or entry is None:
            continue
        values = entry.get("inputs") or {}
        current = node.get("widgets_values")
        if isinstance(current, Mapping):
            node["widgets_values"] = {
                k: _unwrap(values[k]) if k in values and not is_api_link(values[k]) else v for k, v in current.items()
            }
            continue
        old = map_widget_values(widget_inputs(spec), current)
        old_list = current if isinstance(current, list) else []
        controls = iter(v for v in old_list if isinstance(v, str) and v in CONTROL_VALUES)
        rebuilt: list[Any] = []
        for w in widget_inputs(spec):
            value = values.get(w.name, old.get(w.name, w.default))
            rebuilt.append(old.get(w.name, w.default) if is_api_link(value) else _unwrap(value))
            if has_control(w):
                rebuilt.append(next(controls, "fixed"))
        node["widgets_values"] = rebuilt
    return out
