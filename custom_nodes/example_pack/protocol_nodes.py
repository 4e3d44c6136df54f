"""Protocol-style nodes: classes with INPUT_TYPES, RETURN_TYPES and FUNCTION, the form most existing packs use.

They use the host modules packs import by name (`comfy.utils`, `comfy.comfy_types`), which Loom provides.
"""

from __future__ import annotations

from typing import Any

from comfy.comfy_types import IO, ComfyNodeABC, InputTypeDict
from comfy.utils import ProgressBar


class ExampleSplitText(ComfyNodeABC):
    """Split a text into lines. The output is a list: each node linked to it runs once per line."""

    CATEGORY = "example"
    RETURN_TYPES = (IO.STRING, IO.INT)
    RETURN_NAMES = ("lines", "count")
    OUTPUT_IS_LIST = (True, False)
    FUNCTION = "split"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypeDict:
        return {
            "required": {
                "text": (IO.STRING, {"default": "one\ntwo\nthree", "multiline": True}),
                "skip_empty": (IO.BOOLEAN, {"default": True}),
            }
        }

    def split(self, text: str, skip_empty: bool) -> tuple[list[str], int]:
        lines = text.splitlines()
        if skip_empty:
            lines = [line for line in lines if line.strip()]
        bar = ProgressBar(len(lines))
        for _ in lines:
            bar.update(1)  # a `progress` event per line; an interrupted job stops here
        return lines, len(lines)


class ExampleJoinText(ComfyNodeABC):
    """Join texts. INPUT_IS_LIST: the function gets every input as a list (all the lines of a list output)."""

    CATEGORY = "example"
    RETURN_TYPES = (IO.STRING,)
    FUNCTION = "join"
    INPUT_IS_LIST = True

    @classmethod
    def INPUT_TYPES(cls) -> InputTypeDict:
        return {
            "required": {
                "texts": (IO.STRING, {"forceInput": True}),
                "separator": (IO.STRING, {"default": ", "}),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, separator: str) -> bool | str:
        """Checked before the job is queued: True, or a message the canvas shows on the input."""
        if "\n" in separator:
            return "the separator must be on one line"
        return True

    def join(self, texts: list[str], separator: list[str]) -> tuple[str]:
        return (separator[0].join(texts),)


class ExampleTextSwitch(ComfyNodeABC):
    """Pick one of two texts. Both are lazy: only the branch chosen runs."""

    CATEGORY = "example"
    RETURN_TYPES = (IO.STRING,)
    FUNCTION = "pick"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypeDict:
        return {
            "required": {
                "use_first": (IO.BOOLEAN, {"default": True}),
                "first": (IO.STRING, {"lazy": True, "forceInput": True}),
                "second": (IO.STRING, {"lazy": True, "forceInput": True}),
            }
        }

    def check_lazy_status(self, use_first: bool, first: Any = None, second: Any = None) -> list[str]:
        """Names of the lazy inputs still needed; called again until it returns none."""
        wanted = "first" if use_first else "second"
        return [wanted] if (first if use_first else second) is None else []

    def pick(self, use_first: bool, first: Any = None, second: Any = None) -> tuple[str]:
        return (first if use_first else second,)


class ExampleShowText(ComfyNodeABC):
    """An output node: shows a text on the canvas (the `ui` part) and passes it on."""

    CATEGORY = "example"
    RETURN_TYPES = (IO.STRING,)
    FUNCTION = "show"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> InputTypeDict:
        return {"required": {"text": (IO.STRING, {"forceInput": True})}}

    @classmethod
    def IS_CHANGED(cls, text: Any = None) -> float:
        """Its return value joins the cache signature; NaN never equals itself, so this node always runs."""
        return float("nan")

    def show(self, text: str) -> dict[str, Any]:
        return {"ui": {"text": [text]}, "result": (text,)}
