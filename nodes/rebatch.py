"""Rebatching: whole lists of image or latent batches in, a list of batches of `batch_size` out. They take whole
lists (INPUT_IS_LIST) so the batches of a list output (or of a node that ran once per item) can be regrouped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.native import Int, Out, Socket, node

if TYPE_CHECKING:
    import torch

BATCH_SIZE = Int(1, min=1, max=4096)


def _groups(items: list[Any], size: int, shape: Any) -> list[list[Any]]:
    """Consecutive runs of at most `size` items; an item of another shape (`shape(item)`) starts a new run."""
    groups: list[list[Any]] = []
    for item in items:
        if not groups or len(groups[-1]) >= size or shape(groups[-1][0]) != shape(item):
            groups.append([])
        groups[-1].append(item)
    return groups


@node(category="image/batch", outputs=[Out("IMAGE", is_list=True)], input_is_list=True)
def RebatchImages(images: list[Any] = Socket("IMAGE"), batch_size: list[int] = BATCH_SIZE) -> list[Any]:
    """Every image of every incoming batch, in order, regrouped into batches of `batch_size` (a size change
    starts a new batch)."""
    import torch

    singles = [batch[i : i + 1] for batch in images for i in range(batch.shape[0])]
    return [torch.cat(group) for group in _groups(singles, batch_size[0], lambda t: tuple(t.shape[1:]))]


@node(category="latent/batch", outputs=[Out("LATENT", is_list=True)], input_is_list=True)
def RebatchLatents(latents: list[dict[str, Any]] = Socket("LATENT"), batch_size: list[int] = BATCH_SIZE) -> list[Any]:
    """Every latent of every incoming batch, in order, regrouped into batches of `batch_size` (a size change starts
    a new batch); noise masks follow their latents, and a batch where some had none gets an all-ones mask."""
    import torch

    singles: list[dict[str, Any]] = []
    for latent in latents:
        samples = latent["samples"]
        mask = latent.get("noise_mask")
        for i in range(samples.shape[0]):
            one: dict[str, Any] = {"samples": samples[i : i + 1]}
            if mask is not None:
                one["noise_mask"] = _mask_item(mask, i, samples)
            singles.append(one)
    out = []
    for group in _groups(singles, batch_size[0], lambda s: tuple(s["samples"].shape[1:])):
        batch: dict[str, Any] = {"samples": torch.cat([s["samples"] for s in group])}
        if any("noise_mask" in s for s in group):
            batch["noise_mask"] = torch.cat([s.get("noise_mask", _full_mask(group)) for s in group])
        out.append(batch)
    return out


def _mask_item(mask: torch.Tensor, index: int, samples: torch.Tensor) -> torch.Tensor:
    """Item `index` of a noise mask ([B, H, W] or [B, 1, H, W]; a shorter batch repeats its last mask)."""
    m = mask if mask.dim() == 4 else mask.reshape(-1, 1, *mask.shape[-2:])
    return m[min(index, m.shape[0] - 1)].unsqueeze(0)


def _full_mask(group: list[dict[str, Any]]) -> torch.Tensor:
    """A full mask for a latent that had none, shaped like the group's other masks."""
    import torch

    shaped = next(s["noise_mask"] for s in group if "noise_mask" in s)
    return torch.ones_like(shaped)
