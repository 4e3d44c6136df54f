"""Hypernetwork files in the A1111 layout, with seeded weights, for the hypernetwork tests."""

from __future__ import annotations

from pathlib import Path

import torch


def mlp_state(width: int, seed: int, zero_out: bool = False, layer_norm: bool = False) -> dict[str, torch.Tensor]:
    """An A1111 MLP state: width -> 2*width -> width, indices as its Sequential numbers them (activations count)."""
    gen = torch.Generator().manual_seed(seed)
    state = {
        "linear.0.weight": torch.randn(2 * width, width, generator=gen) * 0.1,
        "linear.0.bias": torch.randn(2 * width, generator=gen) * 0.1,
    }
    last = 3
    if layer_norm:
        state |= {"linear.2.weight": torch.ones(2 * width) * 1.5, "linear.2.bias": torch.full((2 * width,), 0.1)}
        last = 4
    state[f"linear.{last}.weight"] = torch.randn(width, 2 * width, generator=gen) * (0.0 if zero_out else 0.1)
    state[f"linear.{last}.bias"] = torch.randn(width, generator=gen) * (0.0 if zero_out else 0.1)
    return state


def write_pt(path: Path, widths: dict[int, int], zero_out: bool = False, **options: object) -> Path:
    """widths: width -> seed; the key and value MLPs of a width share their weights when `same` is set."""
    same = bool(options.pop("same", False))
    data: dict[object, object] = {
        w: [mlp_state(w, s, zero_out), mlp_state(w, s if same else s + 100, zero_out)] for w, s in widths.items()
    }
    data |= {"activation_func": "relu", "is_layer_norm": False, "activate_output": False, "name": "test"}
    data |= options
    torch.save(data, path)
    return path
