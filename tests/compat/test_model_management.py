"""`comfy.model_management`: interrupts act on the calling node's job; the device comes from torch lazily."""

from __future__ import annotations

import pytest

import compat
from engine.context import Interrupted, NodeContext, RunControl, reset_current_context, set_current_context


def test_interrupts_act_on_the_running_node(host: compat.Host) -> None:
    import comfy.model_management as mm

    control = RunControl()
    token = set_current_context(NodeContext("p", "1", "1", "X", lambda e: None, control))
    try:
        assert not mm.processing_interrupted()
        mm.throw_exception_if_processing_interrupted()
        mm.interrupt_current_processing()
        assert control.interrupted and mm.processing_interrupted()
        with pytest.raises(Interrupted):
            mm.throw_exception_if_processing_interrupted()
        mm.interrupt_current_processing(False)
        assert not control.interrupted
    finally:
        reset_current_context(token)


def test_outside_a_node_interrupt_goes_to_the_bound_hook(host: compat.Host) -> None:
    import comfy.model_management as mm

    calls: list[str] = []
    host.interrupt = lambda: calls.append("stop")
    mm.throw_exception_if_processing_interrupted()
    assert not mm.processing_interrupted()
    mm.interrupt_current_processing()
    assert calls == ["stop"]


def test_device_honours_cpu_and_cache_freeing_is_safe(host: compat.Host) -> None:
    import comfy.model_management as mm

    host.cpu = True
    assert str(mm.get_torch_device()) == "cpu"
    mm.soft_empty_cache()
    with pytest.raises(AttributeError, match=r"does not provide comfy\.model_management\.no_such_function"):
        mm.no_such_function  # noqa: B018
