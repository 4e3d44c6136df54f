import torch

from diffusion.regions import blend, has_regions, latent_mask, region


def _like(batch: int, h: int, w: int) -> torch.Tensor:
    return torch.zeros(batch, 4, h, w)


def test_area_in_latent_units_and_percentages() -> None:
    r = region({"area": (4, 6, 0, 0), "strength": 0.5}, _like(2, 16, 16))
    assert (r.y0, r.y1, r.x0, r.x1) == (0, 4, 0, 6)
    assert r.weight.shape == (2, 1, 4, 6) and r.weight.max() == 0.5
    p = region({"area": ("percentage", 0.5, 0.25, 0.5, 0.0)}, _like(1, 16, 32))
    assert (p.y0, p.y1, p.x0, p.x1) == (8, 16, 0, 8)
    clipped = region({"area": (10, 10, 12, 12)}, _like(1, 16, 16))
    assert (clipped.y1, clipped.x1) == (16, 16)
    assert has_regions([{}, {"area": (1, 1, 0, 0)}]) and not has_regions([{}, {"strength": 2.0}])


def test_area_edges_inside_the_frame_are_feathered() -> None:
    r = region({"area": (16, 16, 8, 0)}, _like(1, 32, 32))  # rows 8..24, columns 0..16
    w = r.weight[0, 0]
    assert w[8, 8] == 1.0  # the middle keeps full weight
    assert torch.all(w[:, 0] == w[:, 4]) and w[8, 0] == 1.0  # the left edge is the frame's: no fade
    top = w[:4, 8]
    assert torch.all(top[1:] > top[:-1]) and 0 < top[0] < 0.5  # fades in from the inner top edge
    assert torch.all(w[-4:, 8].flip(0) == top)  # and symmetrically at the bottom
    assert torch.all(w[8, -4:].flip(0) == top)  # the right edge lies inside the frame too
    whole = region({"area": (32, 32, 0, 0)}, _like(1, 32, 32))
    assert torch.all(whole.weight == 1.0)


def test_mask_weights_and_mask_bounds() -> None:
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:32, 32:64] = 1.0
    plain = region({"mask": mask, "mask_strength": 0.5}, _like(1, 8, 8))
    assert (plain.y0, plain.y1, plain.x0, plain.x1) == (0, 8, 0, 8)
    assert plain.weight[0, 0, 3, 6] == 0.5 and plain.weight[0, 0, 0, 0] == 0
    bounded = region({"mask": mask, "set_area_to_bounds": True}, _like(1, 8, 8))
    assert (bounded.y0, bounded.y1, bounded.x0, bounded.x1) == (2, 4, 4, 8)  # mask rows 16:32, columns 32:64 at 1/8
    assert bounded.weight.shape == (1, 1, 2, 4) and torch.all(bounded.weight == 1.0)
    assert latent_mask(torch.ones(16, 16), _like(3, 4, 4)).shape == (3, 1, 4, 4)


def test_blend_is_the_weighted_mean_where_regions_overlap() -> None:
    like = _like(1, 8, 8)
    full = region({"strength": 1.0}, like)
    left = region({"area": (8, 4, 0, 0), "strength": 3.0}, like)  # columns 0..4; its right edge fades
    out = blend([(full, torch.full_like(like, 1.0)), (left, torch.full((1, 4, 8, 4), 5.0))], like)
    assert torch.allclose(out[..., :3], torch.full((1, 4, 8, 3), 4.0))
    assert 1.0 < float(out[0, 0, 0, 3]) < 4.0  # the feathered column mixes less of the area
    assert torch.allclose(out[..., 4:], torch.ones(1, 4, 8, 4))
    only_left = blend([(left, torch.full_like(like, 2.0))], like)
    assert torch.allclose(only_left[..., :4], torch.full((1, 4, 8, 4), 2.0)) and not only_left[..., 4:].any()
