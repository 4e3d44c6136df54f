import torch

from engine.context import NodeContext, RunControl
from engine.events import Event, NodeWarning
from engine.registry import NodeRegistry
from nodes import conditioning_ops as ops


def _context(events: list[Event]) -> NodeContext:
    return NodeContext("p", "1", "1", "Conditioning", events.append, RunControl())


def _cond(value: float, tokens: int = 3, pooled: bool = True) -> list:
    extras = {"pooled_output": torch.full((1, 4), value)} if pooled else {}
    return [[torch.full((1, tokens, 4), value), extras]]


def test_all_nodes_register_with_the_protocol_names() -> None:
    registry = NodeRegistry()
    added = registry.add_module(ops)
    assert set(added) == {
        "ConditioningCombine",
        "ConditioningConcat",
        "ConditioningAverage",
        "ConditioningSetArea",
        "ConditioningSetAreaPercentage",
        "ConditioningSetMask",
        "ConditioningZeroOut",
        "ConditioningSetTimestepRange",
    }
    order = registry.get("ConditioningSetArea").schema()["input_order"]["required"]
    assert order == ["conditioning", "width", "height", "x", "y", "strength"]
    assert registry.get("ConditioningSetMask").schema()["input"]["required"]["set_cond_area"][0] == [
        "default",
        "mask bounds",
    ]


def test_combine_and_concat() -> None:
    a, b = _cond(1.0), _cond(2.0, tokens=2)
    (combined,) = ops.ConditioningCombine(a, b)
    assert len(combined) == 2 and combined[0][0] is a[0][0] and combined[1][0] is b[0][0]
    events: list[Event] = []
    (concat,) = ops.ConditioningConcat(a, b, ctx=_context(events))
    assert concat[0][0].shape == (1, 5, 4)
    assert torch.equal(concat[0][0][:, 3:], b[0][0])
    assert concat[0][1] is not a[0][1]
    assert events == []
    ops.ConditioningConcat(a, a + b, ctx=_context(events))
    assert [type(e) for e in events] == [NodeWarning] and "only the first is used" in events[0].message


def test_average_pads_truncates_and_blends_pooled() -> None:
    to, src = _cond(1.0, tokens=3), _cond(3.0, tokens=2)
    ctx = _context([])
    (out,) = ops.ConditioningAverage(to, src, 0.25, ctx=ctx)
    tensor, extras = out[0]
    assert tensor.shape == (1, 3, 4)
    assert torch.allclose(tensor[:, :2], torch.full((1, 2, 4), 0.25 + 2.25))
    assert torch.allclose(tensor[:, 2], torch.full((1, 4), 0.25))
    assert torch.allclose(extras["pooled_output"], torch.full((1, 4), 2.5))
    (longer,) = ops.ConditioningAverage(_cond(1.0, tokens=2), _cond(3.0, tokens=5), 0.5, ctx=ctx)
    assert longer[0][0].shape == (1, 2, 4)


def test_area_mask_range_and_zero_out_never_mutate_the_input() -> None:
    cond = _cond(1.0)
    (area,) = ops.ConditioningSetArea(cond, 256, 128, 64, 32, 0.5)
    assert area[0][1]["area"] == (16, 32, 4, 8)
    assert area[0][1]["strength"] == 0.5 and area[0][1]["set_area_to_bounds"] is False
    (pct,) = ops.ConditioningSetAreaPercentage(cond, 0.5, 0.25, 0.1, 0.2, 1.0)
    assert pct[0][1]["area"] == ("percentage", 0.25, 0.5, 0.2, 0.1)
    mask = torch.ones(16, 16)
    (masked,) = ops.ConditioningSetMask(cond, mask, 0.8, "mask bounds")
    assert masked[0][1]["mask"].shape == (1, 16, 16)
    assert masked[0][1]["mask_strength"] == 0.8 and masked[0][1]["set_area_to_bounds"] is True
    (ranged,) = ops.ConditioningSetTimestepRange(cond, 0.2, 0.7)
    assert (ranged[0][1]["start_percent"], ranged[0][1]["end_percent"]) == (0.2, 0.7)
    (zero,) = ops.ConditioningZeroOut(cond)
    assert not zero[0][0].any() and not zero[0][1]["pooled_output"].any()
    assert cond[0][1].keys() == {"pooled_output"} and torch.equal(cond[0][0], torch.ones(1, 3, 4))
