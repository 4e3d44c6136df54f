"""Loom's example node pack: both ways of writing a node. Read README.md, the tutorial, alongside this code."""

from .native_nodes import ExampleBrightness, ExampleRepeatText
from .protocol_nodes import ExampleJoinText, ExampleShowText, ExampleSplitText, ExampleTextSwitch

# Protocol-style classes are exported by name; native `@node` objects are found in this module by themselves.
NODE_CLASS_MAPPINGS = {
    "ExampleSplitText": ExampleSplitText,
    "ExampleJoinText": ExampleJoinText,
    "ExampleTextSwitch": ExampleTextSwitch,
    "ExampleShowText": ExampleShowText,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ExampleSplitText": "Split Text (example)",
    "ExampleJoinText": "Join Text (example)",
    "ExampleTextSwitch": "Text Switch (example)",
    "ExampleShowText": "Show Text (example)",
}
# Served under /extensions/example_pack/ and loaded by the canvas.
WEB_DIRECTORY = "./web"

__all__ = [
    "NODE_CLASS_MAPPINGS",
    "NODE_DISPLAY_NAME_MAPPINGS",
    "WEB_DIRECTORY",
    "ExampleBrightness",
    "ExampleRepeatText",
]
