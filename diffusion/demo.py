"""The embedded demo checkpoint: a tiny random-weight SD 1.x-architecture model in the real single-file format.

On a fresh machine there are no weights and nothing can be downloaded; when models/checkpoints is empty Loom
writes this file so the default workflow runs end to end in seconds on a CPU. Its images are noise. It is written
with numpy from a bundled tensor table (no torch import, ~0.1 s), deterministically.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

DEMO_NAME = "loom-demo-tiny-sd15.safetensors"
LAYOUT_FILE = Path(__file__).resolve().parent / "configs" / "demo_layout.json"


def demo_tensors(seed: int = 0) -> dict:
    """Deterministic weights for the demo layout: Gaussians scaled by 1/sqrt(fan-in), norms near 1."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in json.loads(LAYOUT_FILE.read_text()).items():
        noise = rng.standard_normal(shape, dtype=np.float32)
        if len(shape) >= 2:
            out[key] = noise / np.float32(math.sqrt(math.prod(shape[1:])))
        elif "norm" in key and key.endswith("weight"):
            out[key] = 1 + np.float32(0.02) * noise
        else:
            out[key] = np.float32(0.02) * noise
    return out


def write_demo_checkpoint(checkpoints_dir: Path, seed: int = 0) -> Path:
    from safetensors.numpy import save_file

    path = Path(checkpoints_dir) / DEMO_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(demo_tensors(seed), str(tmp), metadata={"loom": "tiny random-weight demo; its images are noise"})
    tmp.replace(path)
    return path


def ensure_demo_checkpoint(checkpoints_dir: Path, existing: list[str]) -> Path | None:
    """Write the demo checkpoint when the checkpoints folder lists no model at all; otherwise do nothing."""
    if existing:
        return None
    return write_demo_checkpoint(checkpoints_dir)
