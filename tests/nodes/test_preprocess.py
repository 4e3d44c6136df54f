from typing import Any

import torch


def test_canny_node_returns_a_white_on_black_rgb_image(run: Any) -> None:
    image = torch.zeros(1, 24, 24, 3)
    image[:, 6:18, 6:18] = 1.0
    (edges,) = run("Canny", image=image, low_threshold=0.4, high_threshold=0.8)
    assert edges.shape == (1, 24, 24, 3)
    assert torch.equal(edges[..., 0], edges[..., 2])
    assert edges.max() == 1.0 and edges[0, 10:14, 10:14].sum() == 0
