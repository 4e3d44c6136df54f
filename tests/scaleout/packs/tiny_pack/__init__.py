"""A tiny node pack for the scale-out tests: a "checkpoint" loader, a text encoder, a step that can be held at a
rendezvous (to prove two jobs run at once, or to kill a worker mid-job), and an output node that writes a PNG.
Workers load it from the configured custom_nodes folder, as they load any pack."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

from engine.context import NodeContext
from engine.native import Int, Out, Socket, String, node
from nodes.files import OutputWriter
from nodes.shared import folders_of

WAIT_LIMIT = 120.0  # seconds a rendezvous waits before failing the node


class TinyModel:
    """Stands in for a loaded checkpoint: the file's bytes and the process that loaded it."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.data = data
        self.pid = os.getpid()

    def loom_nbytes(self) -> int:
        return len(self.data)


def _checkpoint_fingerprint(ckpt_name: str, env: Any, **_: Any) -> str:
    path = folders_of(env).model_path("checkpoints", ckpt_name)
    return f"{path.stat().st_size}:{path.stat().st_mtime_ns}" if path else f"missing:{ckpt_name}"


@node(category="test", outputs=[Out("MODEL", "model")], fingerprint=_checkpoint_fingerprint)
def TinyCheckpointLoader(ctx: NodeContext, ckpt_name: str = String("tiny.safetensors")) -> Any:
    path = folders_of(ctx.env).model_path("checkpoints", ckpt_name)
    if path is None:
        raise FileNotFoundError(f"checkpoint {ckpt_name!r} not found")
    return TinyModel(ckpt_name, path.read_bytes())


@node(category="test", outputs=[Out("CONDITIONING", "conditioning")])
def TinyEncode(model: Any = Socket("MODEL"), text: str = String("a cat")) -> Any:
    return [[f"{model.name}:{text}", {"pid": os.getpid()}]]


@node(category="test", outputs=[Out("CONDITIONING", "conditioning")])
def TinyRendezvous(
    ctx: NodeContext,
    conditioning: Any = Socket("CONDITIONING"),
    folder: str = String(""),
    me: str = String(""),
    wait_for: str = String(""),
    steps: int = Int(2, min=1, max=100),
) -> Any:
    """Touch `folder/me`, then wait until `folder/wait_for` exists (nothing to wait for when it is empty)."""
    if folder and me:  # written whole, then named: a reader never sees it empty
        (Path(folder) / f".{me}").write_text(str(os.getpid()))
        (Path(folder) / f".{me}").rename(Path(folder) / me)
    deadline = time.monotonic() + WAIT_LIMIT
    while folder and wait_for and not (Path(folder) / wait_for).exists():
        ctx.check_interrupt()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{wait_for} never appeared")
        time.sleep(0.05)
    for step in range(steps):
        ctx.progress(step + 1, steps)
    return conditioning


@node(category="test", outputs=[], output_node=True)
def TinySave(
    ctx: NodeContext, conditioning: Any = Socket("CONDITIONING"), filename_prefix: str = String("tiny")
) -> dict[str, Any]:
    """Write a 2x2 PNG to the output folder; its ui names the file and the process that made it."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (len(conditioning[0][0]) % 256, 0, 0)).save(buffer, format="PNG")
    writer = OutputWriter(folders_of(ctx.env).output, "output", filename_prefix)
    saved = writer.write(buffer.getvalue(), "png")
    return {"ui": {"images": [saved], "pid": [os.getpid()]}, "result": ()}
