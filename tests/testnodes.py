"""Small native nodes for server and job tests: numbers, an image writer, slow, failing and gated nodes.

They only need `ctx.env.folders` (any object with a Folders there), so tests run the real executor without models.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from engine.context import NodeContext
from engine.events import Preview
from engine.native import Int, Socket, String, node


def tiny_jpeg() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    noise = bytes((i * 7919 + (i >> 8) * 104729) % 251 for i in range(160 * 160 * 3))  # ~20 kB: fills socket buffers
    Image.frombytes("RGB", (160, 160), noise).save(out, format="JPEG", quality=95)
    return out.getvalue()


@node(category="testing", outputs=["INT"])
def TestNumber(value: int = Int(1, min=0, max=1000)) -> int:
    return value


@node(category="testing", outputs=["INT"])
def TestAdd(a: int = Socket("INT"), b: int = Socket("INT")) -> int:
    return a + b


@node(category="testing", outputs=["INT"])
def TestSteps(
    ctx: NodeContext,
    value: int = Socket("INT"),
    steps: int = Int(3, min=1, max=1000000),
    delay_ms: int = Int(0, min=0, max=1000, optional=True),
    previews: int = Int(1, min=0, max=1000000, optional=True),
) -> int:
    """Reports progress each step (with a preview for the first `previews`); long runs wait for an interrupt."""
    jpeg = tiny_jpeg()
    for i in range(steps):
        ctx.progress(i + 1, steps, Preview("JPEG", jpeg) if i < previews else None)
        time.sleep(delay_ms / 1000)
    return value


@node(category="testing", outputs=["INT"])
def TestWaitFile(
    ctx: NodeContext, value: int = Socket("INT"), path: str = String(""), log: str = String("", optional=True)
) -> int:
    """Appends a line to `log` when it starts, then waits until `path` exists: a run that tests can hold open."""
    if log:
        with open(log, "a") as f:
            f.write(f"{ctx.prompt_id}\n")
    while path and not Path(path).exists():
        ctx.check_interrupt()
        time.sleep(0.02)
    return value


@node(category="testing", outputs=["INT"], output_node=True)
def TestWaitDeaf(value: int = Socket("INT"), path: str = String("")) -> dict:
    """Waits until `path` exists without ever looking at the interrupt flag, as many nodes do; an output node, so
    it can be the last one to run."""
    while not Path(path).exists():
        time.sleep(0.02)
    return {"ui": {"text": [str(value)]}, "result": (value,)}


@node(category="testing", outputs=["INT"])
def TestFail(value: int = Socket("INT")) -> int:
    raise RuntimeError(f"failing on purpose with {value}")


ABORTS = {"SystemExit": SystemExit, "KeyboardInterrupt": KeyboardInterrupt}


@node(category="testing", outputs=["INT"])
def TestAbort(value: int = Socket("INT"), kind: str = String("SystemExit")) -> int:
    """Raises a BaseException that is not an Exception (SystemExit, KeyboardInterrupt), as a careless node does."""
    raise ABORTS[kind](f"aborting with {value}")


@node(category="testing", outputs=["INT"])
async def TestAbortAsync(value: int = Socket("INT"), kind: str = String("SystemExit")) -> int:
    raise ABORTS[kind](f"aborting with {value}")


@node(category="testing", output_node=True)
def TestSaveImage(ctx: NodeContext, value: int = Socket("INT"), prefix: str = String("test", optional=True)) -> dict:
    """Writes a small PNG whose colour encodes `value` into output/, and shows it."""
    from PIL import Image

    folder = ctx.env.folders.output
    name = f"{prefix}_{value:05d}.png"
    Image.new("RGBA", (8, 8), (value % 256, 0, 0, 128)).save(folder / name)
    return {"ui": {"images": [{"filename": name, "subfolder": "", "type": "output"}]}, "result": ()}


@node(category="testing", output_node=True)
def TestShow(value: int = Socket("INT")) -> dict:
    """Shows `value` as text: an output node that needs no folders."""
    return {"ui": {"text": [str(value)]}}


@node(category="testing", outputs=["INT"])
def TestTalk(ctx: NodeContext, value: int = Socket("INT"), says: str = String("working")) -> int:
    """Reports `says` as text on itself, then passes `value` on."""
    ctx.text(f"{says} on {value}")
    return value


@node(category="testing", output_node=True)
def TestBadUi(value: int = Socket("INT")) -> dict:
    """Shows something JSON cannot hold (bytes): the history must still be written."""
    return {"ui": {"blob": [str(value).encode()]}}


@node(category="testing", output_node=True)
def TestBigText(value: int = Socket("INT"), size: int = Int(1000, min=0, max=100_000_000)) -> dict:
    """Shows `size` characters of text: a large history entry."""
    return {"ui": {"text": [str(value) + "x" * size]}}


@node(category="testing", output_node=True)
def TestWriteOutput(
    ctx: NodeContext, value: int = Socket("INT"), size: int = Int(1000, min=0, max=100_000_000)
) -> dict:
    """Writes `size` bytes into output/ through the output writer the image savers use."""
    from nodes.files import OutputWriter

    saved = OutputWriter(ctx.env.folders.output, "output", "blob").write(bytes([value % 256]) * size, "bin")
    return {"ui": {"files": [saved]}}


@node(category="testing", outputs=["MODEL"])
def TestLoadBigModel(megabytes: int = Int(64, min=1, max=16384)) -> Any:
    """A stand-in model: `megabytes` of float32 weights, touched so they are resident."""
    import torch

    module = torch.nn.Linear(1024, megabytes * 256, bias=False)
    module.weight.data.fill_(0.5)
    return module


@node(category="testing", output_node=True)
def TestUseModel(model: Any = Socket("MODEL")) -> dict:
    return {"ui": {"text": [str(sum(p.numel() for p in model.parameters()))]}}
