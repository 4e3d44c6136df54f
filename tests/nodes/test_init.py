"""register_builtin adds the built-in node modules; importing them stays free of torch."""

from __future__ import annotations

import subprocess
import sys

from engine.registry import NodeRegistry
from nodes import register_builtin

EXPECTED = {
    "EmptyLatentImage",
    "LatentUpscale",
    "LatentUpscaleBy",
    "SetLatentNoiseMask",
    "LatentAdd",
    "LatentSubtract",
    "LatentMultiply",
    "LatentInterpolate",
    "LatentBlend",
    "LatentComposite",
    "LatentFromBatch",
    "RepeatLatentBatch",
    "LatentCrop",
    "LatentFlip",
    "LatentRotate",
    "SaveLatent",
    "LoadLatent",
    "LoadImage",
    "LoadImageMask",
    "SaveImage",
    "PreviewImage",
    "ImageScale",
    "ImageScaleBy",
    "ImageScaleToTotalPixels",
    "ImageInvert",
    "ImageBatch",
    "ImageCrop",
    "ImageToMask",
    "MaskToImage",
    "PrimitiveInt",
    "PrimitiveFloat",
    "PrimitiveString",
    "PrimitiveStringMultiline",
    "PrimitiveBoolean",
}


def test_register_builtin_adds_every_node_without_clashes() -> None:
    registry = NodeRegistry()
    register_builtin(registry)
    assert {spec.class_type for spec in registry} >= EXPECTED
    assert registry.clashes == []
    assert all(registry.source(name) == "builtin" for name in EXPECTED)


def test_schemas_follow_the_ecosystem_widget_order() -> None:
    registry = NodeRegistry()
    register_builtin(registry)
    info = registry.object_info()
    assert info["LatentUpscale"]["input_order"]["required"] == ["samples", "upscale_method", "width", "height", "crop"]
    assert info["LatentComposite"]["input_order"]["required"] == ["samples_to", "samples_from", "x", "y", "feather"]
    assert info["ImageCrop"]["input_order"]["required"] == ["image", "width", "height", "x", "y"]
    assert info["SaveImage"]["input"]["hidden"] == {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
    assert info["SaveImage"]["output_node"] is True and info["SaveImage"]["output"] == []
    assert info["LatentUpscale"]["input"]["required"]["upscale_method"][0] == [
        "nearest-exact",
        "bilinear",
        "area",
        "bicubic",
        "bislerp",
    ]
    assert info["ImageScale"]["input"]["required"]["upscale_method"][0][-1] == "lanczos"


def test_importing_the_node_modules_does_not_import_torch() -> None:
    code = "import sys, nodes, nodes.latent, nodes.image, nodes.primitive; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
