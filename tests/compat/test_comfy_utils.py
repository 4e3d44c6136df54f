"""`comfy.utils.ProgressBar` reports through the running node's context and honours interrupts."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image

import compat
from engine.context import Interrupted, NodeContext, RunControl, reset_current_context, set_current_context
from engine.events import Event, NodeProgress


def node_context(events: list[Event], control: RunControl | None = None) -> NodeContext:
    return NodeContext("p1", "7", "7", "Pack", events.append, control or RunControl())


def test_updates_become_progress_events_of_the_node(host: compat.Host) -> None:
    from comfy.utils import ProgressBar

    events: list[Event] = []
    token = set_current_context(node_context(events))
    try:
        bar = ProgressBar(4)
        bar.update(1)
        bar.update(2)
        bar.update_absolute(9)
    finally:
        reset_current_context(token)
    assert [(e.node, e.value, e.max) for e in events if isinstance(e, NodeProgress)] == [
        ("7", 1, 4),
        ("7", 3, 4),
        ("7", 4, 4),
    ]


def test_preview_tuple_is_encoded(host: compat.Host) -> None:
    from comfy.utils import ProgressBar

    events: list[Event] = []
    token = set_current_context(node_context(events))
    try:
        ProgressBar(2).update_absolute(1, 2, ("JPEG", Image.new("RGB", (64, 32), "red"), 16))
    finally:
        reset_current_context(token)
    [event] = events
    assert isinstance(event, NodeProgress) and event.preview is not None and event.preview.format == "JPEG"
    assert Image.open(io.BytesIO(event.preview.data)).size == (16, 8)


def test_interrupted_job_stops_at_the_next_update(host: compat.Host) -> None:
    from comfy.model_management import InterruptProcessingException
    from comfy.utils import ProgressBar

    control = RunControl()
    control.interrupt()
    token = set_current_context(node_context([], control))
    try:
        with pytest.raises(InterruptProcessingException):
            ProgressBar(3).update(1)
    finally:
        reset_current_context(token)
    assert InterruptProcessingException is Interrupted


def test_bar_made_in_a_node_reports_from_its_worker_threads(host: compat.Host) -> None:
    from comfy.utils import ProgressBar

    events: list[Event] = []
    token = set_current_context(node_context(events))
    try:
        bar = ProgressBar(2)
    finally:
        reset_current_context(token)
    worker = threading.Thread(target=bar.update, args=(1,))
    worker.start()
    worker.join()
    assert [(e.value, e.max) for e in events] == [(1, 2)]


def test_outside_a_node_the_bar_is_silent(host: compat.Host) -> None:
    from comfy.utils import ProgressBar

    bar = ProgressBar(2)
    bar.update(1)
    assert bar.current == 1
