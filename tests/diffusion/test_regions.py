import torch

from diffusion.regions import blend, has_regions, region, weighted_mean

CPU = torch.device("cpu")


def test_area_in_latent_units_and_percentages() -> None:
    r = region({"area": (4, 6, 2, 3), "strength": 0.5}, 2, 16, 16, CPU)
    assert (r.y0, r.y1, r.x0, r.x1) == (2, 6, 3, 9)
    assert r.weight.shape == (2, 1, 4, 6) and torch.all(r.weight == 0.5)
    p = region({"area": ("percentage", 0.5, 0.25, 0.5, 0.0)}, 1, 16, 32, CPU)
    assert (p.y0, p.y1, p.x0, p.x1) == (8, 16, 0, 8)
    clipped = region({"area": (10, 10, 12, 12)}, 1, 16, 16, CPU)
    assert (clipped.y1, clipped.x1) == (16, 16)
    assert has_regions([{}, {"area": (1, 1, 0, 0)}]) and not has_regions([{}, {"strength": 2.0}])


def test_mask_weights_and_mask_bounds() -> None:
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:32, 32:64] = 1.0
    plain = region({"mask": mask, "mask_strength": 0.5}, 1, 8, 8, CPU)
    assert (plain.y0, plain.y1, plain.x0, plain.x1) == (0, 8, 0, 8)
    assert plain.weight[0, 0, 3, 6] == 0.5 and plain.weight[0, 0, 0, 0] == 0
    bounded = region({"mask": mask, "set_area_to_bounds": True}, 1, 8, 8, CPU)
    assert (bounded.y0, bounded.y1, bounded.x0, bounded.x1) == (2, 4, 4, 8)  # mask rows 16:32, columns 32:64 at 1/8
    assert bounded.weight.shape == (1, 1, 2, 4) and torch.all(bounded.weight == 1.0)


def test_blend_is_the_weighted_mean_where_regions_overlap() -> None:
    like = torch.zeros(1, 4, 8, 8)
    full = region({"strength": 1.0}, 1, 8, 8, CPU)
    left = region({"area": (8, 4, 0, 0), "strength": 3.0}, 1, 8, 8, CPU)
    out = blend([(full, torch.full_like(like, 1.0)), (left, torch.full((1, 4, 8, 4), 5.0))], like)
    assert torch.allclose(out[..., :4], torch.full((1, 4, 8, 4), 4.0))
    assert torch.allclose(out[..., 4:], torch.ones(1, 4, 8, 4))
    only_left = blend([(left, torch.full_like(like, 2.0))], like)
    assert torch.allclose(only_left[..., :4], torch.full((1, 4, 8, 4), 2.0)) and not only_left[..., 4:].any()


def test_weighted_mean_of_full_size_predictions() -> None:
    like = torch.zeros(1, 4, 8, 8)
    preds = [torch.full_like(like, 1.0), torch.full_like(like, 3.0)]
    out = weighted_mean(preds, [{}, {"area": (8, 4, 0, 4), "strength": 1.0}], like)
    assert torch.allclose(out[..., :4], torch.ones(1, 4, 8, 4)) and torch.allclose(
        out[..., 4:], 2 * torch.ones(1, 4, 8, 4)
    )
