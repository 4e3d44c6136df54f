"""Latent batch and layout nodes, and latent operations, on small tensors."""

from __future__ import annotations

import pytest
import torch

from tests.nodes.conftest import Run


def lat(b: int = 1, h: int = 4, w: int = 4, value: float | None = None) -> dict:
    s = torch.full((b, 4, h, w), value) if value is not None else torch.randn(b, 4, h, w)
    return {"samples": s}


def test_latent_composite_masked(run: Run) -> None:
    mask = torch.zeros(16, 16)
    mask[:, :8] = 1  # left half of the source, in pixels
    out = run(
        "LatentCompositeMasked",
        destination=lat(value=0.0),
        source=lat(h=2, w=2, value=1.0),
        x=8,
        y=16,
        resize_source=False,
        mask=mask,
    )
    s = out["samples"]
    assert s[0, 0, 2:4, 1].eq(1).all() and s[0, 0, 2:4, 2].eq(0).all() and s[0, 0, :2].eq(0).all()
    resized = run(
        "LatentCompositeMasked",
        destination=lat(value=0.0),
        source=lat(h=2, w=2, value=1.0),
        x=0,
        y=0,
        resize_source=True,
        mask=None,
    )
    assert resized["samples"].eq(1).all()


def test_latent_batch_joins_and_keeps_indices(run: Run) -> None:
    a = {**lat(b=2), "batch_index": [4, 5]}
    out = run("LatentBatch", samples1=a, samples2=lat(b=1, h=2, w=2))
    assert out["samples"].shape == (3, 4, 4, 4) and out["batch_index"] == [4, 5, 0]
    with pytest.raises(ValueError, match="channels"):
        run("LatentBatch", samples1=lat(), samples2={"samples": torch.zeros(1, 16, 4, 4)})


def test_latent_concat_and_cut(run: Run) -> None:
    a, b = lat(value=0.0), lat(value=1.0)
    x = run("LatentConcat", samples1=a, samples2=b, dim="x")["samples"]
    assert x.shape == (1, 4, 4, 8) and x[..., 4:].eq(1).all()
    neg = run("LatentConcat", samples1=a, samples2=b, dim="-y")["samples"]
    assert neg.shape == (1, 4, 8, 4) and neg[:, :, :4].eq(1).all()
    with pytest.raises(ValueError, match="no t axis"):
        run("LatentConcat", samples1=a, samples2=b, dim="t")
    ramp = {"samples": torch.arange(8.0).reshape(1, 1, 1, 8)}
    assert run("LatentCut", samples=ramp, dim="x", index=2, amount=3)["samples"].flatten().tolist() == [2, 3, 4]
    assert run("LatentCut", samples=ramp, dim="x", index=-2, amount=5)["samples"].flatten().tolist() == [6, 7]
    assert run("LatentCut", samples=ramp, dim="x", index=20, amount=5)["samples"].flatten().tolist() == [7]


def test_latent_batch_seed_behavior(run: Run) -> None:
    fixed = run("LatentBatchSeedBehavior", samples={**lat(b=3), "batch_index": [2, 3, 4]}, seed_behavior="fixed")
    assert fixed["batch_index"] == [2, 2, 2]
    assert run("LatentBatchSeedBehavior", samples=lat(b=2), seed_behavior="fixed")["batch_index"] == [0, 0]
    random = run("LatentBatchSeedBehavior", samples={**lat(b=2), "batch_index": [1, 2]}, seed_behavior="random")
    assert "batch_index" not in random


def test_tonemap_keeps_directions_and_compresses_lengths(run: Run) -> None:
    op = run("LatentOperationTonemapReinhard", multiplier=1.0)
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    out = run("LatentApplyOperation", samples={"samples": latent}, operation=op)["samples"]
    cos = torch.nn.functional.cosine_similarity(out, latent, dim=1)
    assert torch.allclose(cos, torch.ones_like(cos), atol=1e-5)
    assert (out.norm(dim=1) < latent.norm(dim=1)).all()


def test_sharpen_operation_keeps_lengths_and_flat_latents(run: Run) -> None:
    op = run("LatentOperationSharpen", sharpen_radius=1, sigma=1.0, alpha=0.5)
    flat = torch.ones(1, 4, 5, 5)
    assert torch.allclose(op(latent=flat), flat, atol=1e-5)
    latent = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(2))
    out = op(latent=latent)
    assert out.shape == latent.shape and not torch.allclose(out, latent)
