import torch

from diffusion.canny import canny


def _square() -> torch.Tensor:
    image = torch.zeros(2, 32, 32, 3)
    image[:, 8:24, 8:24] = 1.0
    return image


def test_square_outline_is_thin_closed_and_symmetric() -> None:
    edges = canny(_square(), 0.4, 0.8)
    assert edges.shape == (2, 32, 32)
    assert set(edges.unique().tolist()) <= {0.0, 1.0}
    assert edges[:, 16, :].sum(-1).tolist() == [2.0, 2.0]  # one pixel on each side of a row through the middle
    assert torch.equal(edges[0], edges[0].flip(-1)) and torch.equal(edges[0], edges[0].t())
    assert edges[0, 12:20, 12:20].sum() == 0 and edges[0, :4].sum() == 0


def test_flat_image_has_no_edges_and_high_threshold_prunes() -> None:
    assert canny(torch.full((1, 16, 16, 3), 0.5), 0.1, 0.2).sum() == 0
    faint = _square() * 0.2
    assert canny(faint, 0.05, 0.1).sum() > 0
    assert canny(faint, 0.5, 0.9).sum() == 0


def test_hysteresis_keeps_weak_edges_only_when_connected_to_strong_ones() -> None:
    image = torch.zeros(1, 32, 48, 3)
    image[:, 8:24, 4:16] = 1.0  # strong
    image[:, 8:24, 28:40] = 0.3  # weak, isolated
    both = canny(image, 0.1, 0.2)
    strong_only = canny(image, 0.3, 0.9)
    hysteresis = canny(image, 0.1, 0.9)
    assert both[0, :, 24:].sum() > 0 and strong_only[0, :, 24:].sum() == 0
    assert hysteresis[0, :, 24:].sum() == 0 and torch.equal(hysteresis[0, :, :24], both[0, :, :24])
