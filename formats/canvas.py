"""Canvas-format workflows (what the canvas saves) converted to the API format, using the registry's widget order.

The canvas format lists nodes with positional `widgets_values` and links between numbered slots, plus nodes that
exist only on the canvas (reroutes, primitives, notes) and node modes (muted, bypassed). Conversion flattens
subgraphs and older front ends' group nodes, follows the front-end-only nodes through to real nodes, and maps widget
values to input names. Every problem (unknown node types, malformed entries) is collected and raised together as a
WorkflowFileError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ErrorType
from engine.registry import NodeRegistry
from engine.spec import InputSpec, NodeSpec
from engine.types import ANY, INT, split_union
from formats.problems import Problem, WorkflowFileError, unknown_node_type

MODE_MUTED = 2
MODE_BYPASS = 4
REROUTE = "Reroute"
PRIMITIVE = "PrimitiveNode"
# Nodes the canvas draws but never sends to a server; they carry no computation.
FRONTEND_ONLY = frozenset({"Note", "MarkdownNote", REROUTE, PRIMITIVE})
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
# Widgets the canvas gives a "control after generate" value even when the node does not declare one.
SEED_NAMES = frozenset({"seed", "noise_seed"})
SUBGRAPH_INPUT_NODE = -10
SUBGRAPH_OUTPUT_NODE = -20
# Older front ends' group nodes: node type `workflow/NAME` (later `workflow>NAME`), defined in `extra.groupNodes`.
GROUP_NODE_PREFIXES = ("workflow/", "workflow>")
GROUP_INPUT = "<group input>"

Source = tuple[str, int]


def is_canvas(data: Any) -> bool:
    """A canvas document has a `nodes` list (and usually `links`); the API format is a dict of node dicts."""
    return isinstance(data, Mapping) and isinstance(data.get("nodes"), list)


@dataclass(frozen=True, slots=True)
class CanvasLink:
    id: Any
    origin: str
    origin_slot: int
    target: str
    target_slot: int
    type: str


def parse_link(raw: Any) -> CanvasLink:
    """A link as an array `[id, from node, from slot, to node, to slot, type]` or as an object."""
    if isinstance(raw, Mapping):
        return CanvasLink(
            raw["id"],
            str(raw["origin_id"]),
            int(raw["origin_slot"]),
            str(raw["target_id"]),
            int(raw["target_slot"]),
            str(raw.get("type", ANY)),
        )
    if isinstance(raw, Sequence) and not isinstance(raw, str) and len(raw) >= 5:
        link_type = raw[5] if len(raw) > 5 else ANY
        return CanvasLink(raw[0], str(raw[1]), int(raw[2]), str(raw[3]), int(raw[4]), str(link_type))
    raise ValueError(f"not a link: {raw!r}")


@dataclass(frozen=True, slots=True)
class Value:
    """A literal reached by following a link (a primitive node's value or a subgraph's promoted widget)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Dropped:
    """What a link from a muted node, or from a node left out because it depends on one, resolves to."""

    muted: str  # the id of the muted node it comes down to


Resolved = Source | Value | Dropped | None


@dataclass(slots=True)
class FlatInput:
    name: str
    type: str
    widget: str | None
    source: Source | None


@dataclass(slots=True)
class FlatNode:
    """One canvas node with a globally unique id (`outer:inner` inside subgraphs) and its links resolved to ids."""

    id: str
    type: str
    mode: int
    title: str | None
    widgets_values: Any
    inputs: list[FlatInput]
    output_types: list[str]
    kind: str = "node"  # node | reroute | primitive | ignored | subgraph (or group node) | subgraph_input
    out_map: list[Source | None] = field(default_factory=list)  # subgraph: output slot -> inner source
    instance: str | None = None  # subgraph_input: the id of the subgraph node it belongs to
    promoted: dict[int, Any] = field(default_factory=dict)  # subgraph: input slot -> promoted widget value
    widget_overrides: dict[str, Any] = field(default_factory=dict)  # values its subgraph node shows and sets


class _Flattener:
    """Turns a canvas document (and its subgraph definitions) into FlatNodes, recording problems as it goes."""

    def __init__(self, canvas: Mapping[str, Any], registry: NodeRegistry) -> None:
        self.registry = registry
        self.problems: list[Problem] = []
        self.nodes: dict[str, FlatNode] = {}
        definitions = canvas.get("definitions") or {}
        subgraphs = definitions.get("subgraphs") if isinstance(definitions, Mapping) else None
        self.subgraphs: dict[str, Mapping[str, Any]] = {
            str(sg["id"]): sg for sg in subgraphs or [] if isinstance(sg, Mapping) and "id" in sg
        }
        extra = canvas.get("extra")
        groups = extra.get("groupNodes") if isinstance(extra, Mapping) else None
        self.group_nodes: Mapping[str, Any] = groups if isinstance(groups, Mapping) else {}

    def graph(self, graph: Mapping[str, Any], prefix: str, stack: tuple[str, ...]) -> dict[str, CanvasLink]:
        links: dict[str, CanvasLink] = {}
        for raw in graph.get("links") or []:
            if raw is None:
                continue
            try:
                link = parse_link(raw)
            except (KeyError, TypeError, ValueError, IndexError):
                self.problems.append(Problem(ErrorType.INVALID_PROMPT, f"malformed link {raw!r}"))
                continue
            links[str(link.id)] = link
        for raw in graph.get("nodes") or []:
            if not isinstance(raw, Mapping) or "id" not in raw or not isinstance(raw.get("type"), str):
                self.problems.append(Problem(ErrorType.INVALID_PROMPT, f"malformed node entry {_short(raw)}"))
                continue
            self.node(raw, links, prefix, stack)
        return links

    def node(
        self, raw: Mapping[str, Any], links: Mapping[str, CanvasLink], prefix: str, stack: tuple[str, ...]
    ) -> None:
        node_id = prefix + str(raw["id"])
        class_type = raw["type"]
        inputs: list[FlatInput] = []
        for slot in raw.get("inputs") or []:
            if not isinstance(slot, Mapping) or "name" not in slot:
                continue
            widget = slot.get("widget")
            widget_name = widget.get("name") if isinstance(widget, Mapping) else None
            link = links.get(str(slot.get("link"))) if slot.get("link") is not None else None
            source = (prefix + link.origin, link.origin_slot) if link else None
            inputs.append(FlatInput(str(slot["name"]), str(slot.get("type", ANY)), widget_name, source))
        outputs = [str(o.get("type", ANY)) for o in raw.get("outputs") or [] if isinstance(o, Mapping)]
        mode = int(raw.get("mode") or 0)
        flat = FlatNode(node_id, class_type, mode, raw.get("title"), raw.get("widgets_values"), inputs, outputs)
        self.nodes[node_id] = flat
        if class_type in self.registry:
            spec = self.registry.get(class_type)
            assert spec is not None
            flat.output_types = [o.type for o in spec.outputs]
        elif class_type in self.subgraphs:
            self.expand(flat, raw, stack)
        elif class_type.startswith(GROUP_NODE_PREFIXES):
            self.expand_group(flat, raw, stack)
        elif class_type == REROUTE:
            flat.kind = "reroute"
        elif class_type == PRIMITIVE:
            flat.kind = "primitive"
        elif class_type in FRONTEND_ONLY:
            flat.kind = "ignored"
        else:
            flat.kind = "ignored"
            if mode not in (MODE_MUTED, MODE_BYPASS):  # neither runs, so neither needs the node's code
                self.problems.append(unknown_node_type(node_id, class_type))

    def expand(self, flat: FlatNode, raw: Mapping[str, Any], stack: tuple[str, ...]) -> None:
        """A subgraph node: its inner nodes join the graph as `<this id>:<inner id>`; muted/bypassed ones do not."""
        sg_id = flat.type
        flat.kind = "subgraph"
        if flat.mode in (MODE_MUTED, MODE_BYPASS):
            return
        if sg_id in stack:
            self.problems.append(
                Problem(
                    ErrorType.INVALID_PROMPT, f"node {flat.id}: subgraph {sg_id!r} contains itself", node_id=flat.id
                )
            )
            return
        definition = self.subgraphs[sg_id]
        prefix = flat.id + ":"
        in_node = str(_io_id(definition.get("inputNode"), SUBGRAPH_INPUT_NODE))
        out_node = str(_io_id(definition.get("outputNode"), SUBGRAPH_OUTPUT_NODE))
        links = self.graph(definition, prefix, (*stack, sg_id))
        self.nodes[prefix + in_node] = FlatNode(
            prefix + in_node, "<subgraph input>", 0, None, None, [], [], kind="subgraph_input", instance=flat.id
        )
        outputs = definition.get("outputs") or []
        flat.out_map = [None] * len(outputs)
        for link in links.values():
            if link.target == out_node and 0 <= link.target_slot < len(outputs):
                flat.out_map[link.target_slot] = (prefix + link.origin, link.origin_slot)
        flat.output_types = [str(o.get("type", ANY)) for o in outputs if isinstance(o, Mapping)]
        values = raw.get("widgets_values")
        widget_slots = [i for i, inp in enumerate(flat.inputs) if inp.widget is not None]
        proxies = (raw.get("properties") or {}).get("proxyWidgets")
        if isinstance(proxies, list) and isinstance(values, list):
            self.proxy_widgets(flat, prefix, proxies, values)
        elif isinstance(values, list):
            flat.promoted = {slot: v for slot, v in zip(widget_slots, values, strict=False)}
        elif isinstance(values, Mapping):
            flat.promoted = {i: values[flat.inputs[i].widget] for i in widget_slots if flat.inputs[i].widget in values}

    def proxy_widgets(self, flat: FlatNode, prefix: str, proxies: list[Any], values: list[Any]) -> None:
        """Newer canvases list the inner widgets a subgraph node shows as `[inner node id, widget name]` pairs
        (`properties.proxyWidgets`), its widget values in that order; id "-1" names a subgraph input."""
        for proxy, value in zip(proxies, values, strict=False):
            if not isinstance(proxy, list | tuple) or len(proxy) != 2:
                continue
            inner_id, name = str(proxy[0]), str(proxy[1])
            if inner_id == "-1":
                slot = next((i for i, inp in enumerate(flat.inputs) if name in (inp.widget, inp.name)), None)
                if slot is not None:
                    flat.promoted[slot] = value
            elif prefix + inner_id in self.nodes:
                self.nodes[prefix + inner_id].widget_overrides[name] = value

    def expand_group(self, flat: FlatNode, raw: Mapping[str, Any], stack: tuple[str, ...]) -> None:
        """An older front end's group node: the nodes of its `extra.groupNodes` entry join the graph as
        `<this id>:<index>`, like a subgraph's.

        The entry lists the inner nodes, their links as `[from index, from slot, to index, to slot, ..., type]`,
        and `external` `[index, slot, type]` outputs also used outside. The group node shows, inner node by inner
        node in declaration order, every input not fed from inside (as a socket, or as a widget whose values follow
        each other in its `widgets_values`) and every output not used only inside; `config` may rename or hide them.
        """
        name = flat.type[len("workflow/") :]
        flat.kind = "subgraph"
        if flat.mode in (MODE_MUTED, MODE_BYPASS):
            flat.output_types = [str(o.get("type", ANY)) for o in raw.get("outputs") or [] if isinstance(o, Mapping)]
            return
        definition = self.group_nodes.get(name)
        if not isinstance(definition, Mapping) or not isinstance(definition.get("nodes"), list):
            known = ", ".join(sorted(map(repr, self.group_nodes))) or "none"
            self.problems.append(
                Problem(
                    ErrorType.INVALID_PROMPT,
                    f"node {flat.id}: group node {flat.type!r} uses group {name!r}, which the file's "
                    f"extra.groupNodes does not define (it defines: {known})",
                    node_id=flat.id,
                    class_type=flat.type,
                    value=name,
                )
            )
            return
        if flat.type in stack:
            self.problems.append(
                Problem(ErrorType.INVALID_PROMPT, f"node {flat.id}: group {name!r} contains itself", node_id=flat.id)
            )
            return
        GroupExpansion(self, flat, definition).expand(raw, (*stack, flat.type))


class GroupExpansion:
    """One group node's expansion: builds its inner nodes, then wires the group node's slots to them."""

    def __init__(self, flattener: _Flattener, flat: FlatNode, definition: Mapping[str, Any]) -> None:
        self.flattener = flattener
        self.flat = flat
        self.prefix = flat.id + ":"
        self.inner = [n for n in definition["nodes"] if isinstance(n, Mapping) and isinstance(n.get("type"), str)]
        self.indices = [str(n.get("index", i)) for i, n in enumerate(self.inner)]
        config = definition.get("config")
        self.config: Mapping[str, Any] = {str(k): v for k, v in config.items()} if isinstance(config, Mapping) else {}
        self.links: dict[str, CanvasLink] = {}
        self.fed: set[tuple[str, int]] = set()  # (inner index, input slot) fed from inside
        self.used: set[tuple[str, int]] = set()  # (inner index, output slot) read inside
        for n, raw in enumerate(definition.get("links") or []):
            if not isinstance(raw, list) or len(raw) < 4 or any(not isinstance(v, int) for v in raw[:4]):
                continue
            link = CanvasLink(f"group:{n}", str(raw[0]), raw[1], str(raw[2]), raw[3], str(_at(raw, 5, ANY)))
            self.links[str(link.id)] = link
            self.fed.add((link.target, link.target_slot))
            self.used.add((link.origin, link.origin_slot))
        self.external = {
            (str(e[0]), int(e[1])) for e in definition.get("external") or [] if isinstance(e, list) and len(e) >= 2
        }

    def expand(self, raw: Mapping[str, Any], stack: tuple[str, ...]) -> None:
        by_link = {(lk.target, lk.target_slot): lk.id for lk in self.links.values()}
        for index, node in zip(self.indices, self.inner, strict=True):
            listed = node.get("inputs")
            if not isinstance(listed, list):  # terse definitions leave the input slots to the node's declaration
                spec = self.flattener.registry.get(node["type"])
                listed = [{"name": i.name, "type": i.type} for i in socket_inputs(spec)] if spec else []
            slots = [
                {**slot, "link": by_link.get((index, n))} if isinstance(slot, Mapping) else slot
                for n, slot in enumerate(listed)
            ]
            self.flattener.node({**node, "id": index, "inputs": slots}, self.links, self.prefix, stack)
        input_node = self.prefix + GROUP_INPUT
        self.flattener.nodes[input_node] = FlatNode(
            input_node, GROUP_INPUT, 0, None, None, [], [], kind="subgraph_input", instance=self.flat.id
        )
        self.wire_outputs()
        self.wire_inputs(raw, input_node)

    def node_config(self, index: str, side: str, key: str) -> Mapping[str, Any]:
        entry = self.config.get(index)
        part = entry.get(side) if isinstance(entry, Mapping) else None
        found = part.get(key) if isinstance(part, Mapping) else None
        return found if isinstance(found, Mapping) else {}

    def wire_outputs(self) -> None:
        self.flat.out_map, self.flat.output_types = [], []
        for index in self.indices:
            inner = self.flattener.nodes[self.prefix + index]
            for slot, type_ in enumerate(inner.output_types):
                hidden_inside = (index, slot) in self.used and (index, slot) not in self.external
                if self.node_config(index, "output", str(slot)).get("visible", not hidden_inside):
                    self.flat.out_map.append((inner.id, slot))
                    self.flat.output_types.append(type_)

    def shown_inputs(self) -> tuple[dict[str, tuple[FlatNode, str]], list[tuple[FlatNode, InputSpec]]]:
        """The group node's inputs by name (-> inner node, inner input) and its widgets in order."""
        by_name: dict[str, tuple[FlatNode, str]] = {}
        widgets: list[tuple[FlatNode, InputSpec]] = []
        for index in self.indices:
            inner = self.flattener.nodes[self.prefix + index]
            spec = self.flattener.registry.get(inner.type)
            fed = {inp.widget or inp.name for n, inp in enumerate(inner.inputs) if (index, n) in self.fed}
            names: list[tuple[str, str, InputSpec | None]]  # (name the group shows, inner input, its declaration)
            if spec is not None:
                declared = [i for i in spec.current_inputs() if i.kind == "required"]
                declared += [i for i in spec.current_inputs() if i.kind == "optional"]
                names = [(i.name, i.name, i) for i in declared]
            elif inner.kind == "reroute":
                names = [(self.reroute_type(index, inner), inp.name, None) for inp in inner.inputs[:1]]
            else:
                names = [(inp.name, inp.name, None) for inp in inner.inputs]
            for label, name, declared_input in names:
                custom = self.node_config(index, "input", label)
                if name in fed or custom.get("visible") is False:
                    continue
                shown = custom.get("name") or label
                if shown in by_name:
                    shown = f"{inner.title or inner.type} {label}"
                by_name[str(shown)] = (inner, name)
                if declared_input is not None and declared_input.is_widget:
                    widgets.append((inner, declared_input))
        return by_name, widgets

    def reroute_type(self, index: str, inner: FlatNode) -> str:
        """The type a reroute inside the group carries, which names its group input: that of the links leaving it,
        else of the link entering it, else its own slots' type."""
        for link in self.links.values():
            if link.origin == index and link.type != ANY:
                return link.type
        for link in self.links.values():
            if link.target == index and link.type != ANY:
                return link.type
        typed = [t for t in [*inner.output_types, *(i.type for i in inner.inputs)] if t != ANY]
        return typed[0] if typed else ANY

    def wire_inputs(self, raw: Mapping[str, Any], input_node: str) -> None:
        by_name, widgets = self.shown_inputs()
        values = raw.get("widgets_values")
        if isinstance(values, list):
            for position, value in assign_widget_values([w for _, w in widgets], values):
                inner, widget = widgets[position]
                inner.widget_overrides[widget.name] = value
        for slot, inp in enumerate(self.flat.inputs):
            target = by_name.get(inp.widget or inp.name)
            if target is None:
                self.flattener.problems.append(
                    Problem(
                        ErrorType.INVALID_PROMPT,
                        f"node {self.flat.id}: input {inp.widget or inp.name!r} of group node {self.flat.type!r} "
                        f"matches no input inside the group (it has: {', '.join(map(repr, by_name)) or 'none'})",
                        node_id=self.flat.id,
                        class_type=self.flat.type,
                        input_name=inp.widget or inp.name,
                    )
                )
                continue
            if inp.source is None:
                continue
            inner, name = target
            existing = next((i for i in inner.inputs if (i.widget or i.name) == name), None)
            if existing is None:
                existing = FlatInput(name, inp.type, name if inp.widget else None, None)
                inner.inputs.append(existing)
            existing.source = (input_node, slot)


def _at(items: Sequence[Any], position: int, default: Any) -> Any:
    return items[position] if len(items) > position and items[position] is not None else default


def _io_id(io_node: Any, default: int) -> Any:
    return io_node.get("id", default) if isinstance(io_node, Mapping) else default


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Resolver:
    """Follows links through front-end-only nodes to a real node's output, a literal, nothing, or Dropped."""

    def __init__(self, nodes: Mapping[str, FlatNode], registry: NodeRegistry) -> None:
        self.nodes = nodes
        self.registry = registry
        self._dropped: dict[str, Dropped | None] = {}

    def resolve(self, source: Source | None, seen: frozenset[Source] = frozenset()) -> Resolved:
        if source is None or source in seen:
            return None
        seen = seen | {source}
        node_id, slot = source
        node = self.nodes.get(node_id)
        if node is None:
            return None
        # Reroutes and primitives never run, so their mode (muted or bypassed) changes nothing: the front end
        # passes their value through all the same.
        if node.kind == "reroute":
            return self.resolve(node.inputs[0].source if node.inputs else None, seen)
        if node.kind == "primitive":
            values = node.widgets_values
            return Value(values[0]) if isinstance(values, list) and values else None
        if node.mode == MODE_MUTED:
            return Dropped(node.id)
        if node.kind == "subgraph_input":
            return self.subgraph_input(node, slot, seen)
        if node.mode == MODE_BYPASS:
            return self.resolve(self.bypass_source(node, slot), seen)
        if node.kind == "subgraph":
            return self.resolve(node.out_map[slot] if slot < len(node.out_map) else None, seen)
        if node.kind == "ignored":
            return None
        return self.dropped(node) or source

    def subgraph_input(self, node: FlatNode, slot: int, seen: frozenset[Source]) -> Resolved:
        instance = self.nodes[node.instance or ""]
        if slot < len(instance.inputs) and instance.inputs[slot].source is not None:
            return self.resolve(instance.inputs[slot].source, seen)
        return Value(instance.promoted[slot]) if slot in instance.promoted else None

    def bypass_source(self, node: FlatNode, slot: int) -> Source | None:
        """A bypassed node hands each output the input of the same type (same slot first, then the first one)."""
        if slot >= len(node.output_types):
            return None
        wanted = node.output_types[slot]
        candidates = ([node.inputs[slot]] if slot < len(node.inputs) else []) + node.inputs
        for inp in candidates:
            if inp.source is not None and _same_type(inp.type, wanted):
                return inp.source
        return None

    def dropped(self, node: FlatNode) -> Dropped | None:
        """Set when a required input comes from a muted node (or from one dropped for that): the node is left out."""
        if node.id in self._dropped:
            return self._dropped[node.id]
        self._dropped[node.id] = None  # cycles are the validator's business
        spec = self.registry.get(node.type)
        result = None
        for inp in node.inputs:
            declared = spec.input(inp.widget or inp.name) if spec else None
            if declared is not None and declared.kind == "required":
                resolved = self.resolve(inp.source)
                if isinstance(resolved, Dropped):
                    result = resolved
                    break
        self._dropped[node.id] = result
        return result


def _same_type(a: str, b: str) -> bool:
    return a == b or bool(split_union(a) & split_union(b)) or ANY in (a, b)


def widget_inputs(spec: NodeSpec) -> list[InputSpec]:
    """Widgets in canvas order: required then optional, each in declaration order."""
    inputs = spec.current_inputs()
    return [i for i in inputs if i.is_widget and i.kind == "required"] + [
        i for i in inputs if i.is_widget and i.kind == "optional"
    ]


def socket_inputs(spec: NodeSpec) -> list[InputSpec]:
    """Link-only inputs in canvas slot order: required then optional, each in declaration order."""
    inputs = spec.current_inputs()
    return [i for i in inputs if not i.is_widget and i.kind == "required"] + [
        i for i in inputs if not i.is_widget and i.kind == "optional"
    ]


def has_control(inp: InputSpec) -> bool:
    """Whether the canvas stores a "control after generate" value after this widget."""
    return inp.control_after_generate or (inp.type == INT and inp.name in SEED_NAMES)


def map_widget_values(widgets: Sequence[InputSpec], values: Any) -> dict[str, Any]:
    """Widget values by input name, from a list in canvas order or an object by name.

    A list holds one extra value after each widget with a control; when its length shows the controls are not
    there (older files, other front ends) it is read without them. Extra trailing values (an upload button's) are
    ignored; missing trailing values are left out (the conversion fills in the defaults).
    """
    if isinstance(values, Mapping):
        names = {w.name for w in widgets}
        return {k: v for k, v in values.items() if k in names}
    if not isinstance(values, list):
        return {}
    return {widgets[i].name: v for i, v in assign_widget_values(widgets, values)}


def assign_widget_values(widgets: Sequence[InputSpec], values: Sequence[Any]) -> list[tuple[int, Any]]:
    """(widget position, value) pairs of a canvas `widgets_values` list, skipping "control after generate" values
    (see map_widget_values)."""
    controls = sum(1 for w in widgets if has_control(w))
    with_controls = len(values) >= len(widgets) + controls or controls == 0
    out: list[tuple[int, Any]] = []
    pos = 0
    for position, widget in enumerate(widgets):
        if pos >= len(values):
            break
        out.append((position, values[pos]))
        pos += 1
        if has_control(widget) and pos < len(values):
            nxt = values[pos]
            if with_controls or (isinstance(nxt, str) and nxt in CONTROL_VALUES):
                pos += 1
    return out


def api_literal(value: Any) -> Any:
    """A list literal is wrapped so that it cannot be mistaken for a link."""
    return {"__value__": value} if isinstance(value, list) else value


@dataclass(slots=True)
class Conversion:
    """A canvas converted: the API format (nodes of unknown types left out), the problems that stop it from running,
    and notes on what was left out on purpose (output nodes cut off by a muted node)."""

    api: dict[str, Any]
    problems: list[Problem]
    notes: list[str] = field(default_factory=list)


def canvas_to_api(canvas: Mapping[str, Any], registry: NodeRegistry) -> dict[str, Any]:
    """The API-format workflow of a canvas document; raises WorkflowFileError with every problem found."""
    conversion = convert_canvas(canvas, registry)
    if conversion.problems:
        raise WorkflowFileError(conversion.problems)
    return conversion.api


def _label(node: FlatNode | None, node_id: str) -> str:
    return f"{node_id} ({node.title or node.type})" if node is not None else node_id


def convert_canvas(canvas: Mapping[str, Any], registry: NodeRegistry) -> Conversion:
    """What converts and the problems found, so callers can add their own; see Conversion."""
    if not is_canvas(canvas):
        return Conversion({}, [Problem(ErrorType.INVALID_PROMPT, "not a canvas workflow: it has no 'nodes' list")])
    flattener = _Flattener(canvas, registry)
    flattener.graph(canvas, "", ())
    conversion = Conversion({}, flattener.problems)
    resolver = _Resolver(flattener.nodes, registry)
    api = conversion.api
    for node in flattener.nodes.values():
        spec = registry.get(node.type)
        if node.kind != "node" or spec is None or node.mode in (MODE_MUTED, MODE_BYPASS):
            continue
        dropped = resolver.dropped(node)
        if dropped is not None:
            if spec.output_node:
                muted = _label(flattener.nodes.get(dropped.muted), dropped.muted)
                conversion.notes.append(
                    f"output node {_label(node, node.id)} is left out: it depends on muted node {muted}"
                )
            continue
        widgets = widget_inputs(spec)
        values = map_widget_values(widgets, node.widgets_values)
        values.update((k, v) for k, v in node.widget_overrides.items() if any(w.name == k for w in widgets))
        # A file saved before a node gained a widget lacks its value; the canvas would show the default, so send it.
        values.update((w.name, w.default) for w in widgets if w.name not in values and w.has_default)
        inputs = {name: api_literal(v) for name, v in values.items()}
        for inp in node.inputs:
            resolved = resolver.resolve(inp.source)
            name = inp.widget or inp.name
            if isinstance(resolved, Value):
                inputs[name] = api_literal(resolved.value)
            elif isinstance(resolved, tuple):
                inputs[name] = [resolved[0], resolved[1]]
            elif inp.widget is None:
                inputs.pop(name, None)
        entry: dict[str, Any] = {"class_type": node.type, "inputs": inputs}
        if node.title:
            entry["_meta"] = {"title": node.title}
        api[node.id] = entry
    return conversion
