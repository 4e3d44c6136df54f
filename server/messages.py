"""Engine events -> WebSocket frames in the wire protocol's shapes (DESIGN.md section 6).

A frame is droppable when a later one supersedes it (previews, progress): a slow client loses those first.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

from engine.events import Event
from server.wire import WireMessage, executing, wire_messages

PREVIEW_IMAGE = 1
PROGRESS_TEXT = 3
PREVIEW = "preview"  # the Frame.type of binary previews: only clients that ask for them get them (server.hub)
IMAGE_FORMATS = {"JPEG": 1, "PNG": 2}


@dataclass(frozen=True, slots=True)
class Frame:
    text: str | None = None
    data: bytes | None = None
    droppable: bool = False
    type: str = ""


def text(type_: str, data: dict[str, Any], droppable: bool = False) -> Frame:
    return Frame(text=json.dumps({"type": type_, "data": data}, default=str), droppable=droppable, type=type_)


def status_frame(remaining: int, sid: str | None = None) -> Frame:
    data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": remaining}}}
    if sid is not None:
        data["sid"] = sid
    return text("status", data)


def executing_frame(prompt_id: str, node: str | None, display_node: str | None = None) -> Frame:
    return _frame(executing(prompt_id, node, display_node))


def preview_frame(format: str, data: bytes) -> Frame:
    header = struct.pack(">II", PREVIEW_IMAGE, IMAGE_FORMATS.get(format.upper(), IMAGE_FORMATS["JPEG"]))
    return Frame(data=header + data, droppable=True, type=PREVIEW)


@dataclass
class ProgressState:
    """Per-node state of one job, for the `progress_state` messages of newer clients. A message carries the nodes
    still running plus the one that just changed, so its size does not grow with the workflow."""

    prompt_id: str
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def update(self, node: str, display_node: str, state: str, value: float = 0, max: float = 1) -> Frame:
        entry: dict[str, Any] = {
            "value": value,
            "max": max,
            "state": state,
            "node_id": node,
            "prompt_id": self.prompt_id,
            "display_node_id": display_node,
            "parent_node_id": None,
            "real_node_id": display_node,
        }
        if state == "running" and node not in self.nodes:
            for other in self.nodes.values():  # a node starts: the one before it (with no display output) is done
                other["state"] = "finished"
        self.nodes[node] = entry
        frame = text("progress_state", {"prompt_id": self.prompt_id, "nodes": dict(self.nodes)}, droppable=True)
        self.nodes = {k: v for k, v in self.nodes.items() if v["state"] != "finished"}
        return frame


def progress_text_frame(node: str, text: str) -> Frame:
    """Binary `progress_text`: event type 3, then the node id's length, the node id and the text (UTF-8)."""
    node_bytes = node.encode()
    data = struct.pack(">II", PROGRESS_TEXT, len(node_bytes)) + node_bytes + text.encode()
    return Frame(data=data, droppable=True, type="progress_text")


def _frame(message: WireMessage) -> Frame:
    if message.preview is not None:
        return preview_frame(message.preview.format, message.preview.data)
    if message.type == "progress_text":
        return progress_text_frame(message.data["node"], message.data["text"])
    return text(message.type, message.data, message.droppable)


def encode(event: Event, progress: ProgressState) -> list[Frame]:
    """The frames one event becomes, in order: its wire messages, each followed by the `progress_state` update it
    implies for newer clients."""
    frames: list[Frame] = []
    for message in wire_messages(event):
        frames.append(_frame(message))
        data = message.data
        if message.type == "executing" and data["node"] is not None:
            frames.append(progress.update(data["node"], data["display_node"], "running"))
        elif message.type == "progress":
            frames.append(progress.update(data["node"], data["node"], "running", data["value"], data["max"]))
        elif message.type == "executed":
            frames.append(progress.update(data["node"], data["display_node"], "finished"))
    return frames
