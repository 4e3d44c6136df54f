from __future__ import annotations

from engine.summary import summarise


class Tensorish:
    shape = (1, 4, 8, 8)
    dtype = "float32"


def test_tensors_by_shape_and_long_values_cut() -> None:
    assert summarise(Tensorish()) == "Tensorish(shape=[1, 4, 8, 8], dtype=float32)"
    assert summarise("x" * 500).endswith("...") and len(summarise("x" * 500)) < 300
    assert summarise({"samples": Tensorish(), "n": 3}) == {
        "samples": "Tensorish(shape=[1, 4, 8, 8], dtype=float32)",
        "n": 3,
    }
    assert summarise(list(range(50)))[-1] == "... 40 more"
