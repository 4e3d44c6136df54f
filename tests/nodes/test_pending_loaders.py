"""The loaders the stock front end assumes: declared with the reference's schemas, listing their model folders,
and failing at run time with an error that names the node and what to use instead."""

from __future__ import annotations

import pytest

from engine.environment import NodeEnvironment
from engine.registry import NodeRegistry
from nodes.pending_loaders import LoaderNotAvailable

SCHEMAS = {
    "ImageOnlyCheckpointLoader": (["ckpt_name"], ["MODEL", "CLIP_VISION", "VAE"], "checkpoints"),
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_lists_the_model_folder(name: str, registry: NodeRegistry, env: NodeEnvironment) -> None:
    inputs, outputs, folder = SCHEMAS[name]
    (env.folders.model_dirs(folder)[0] / "some_model.safetensors").write_bytes(b"x")
    schema = registry.get(name).schema()
    assert schema["input_order"]["required"] == inputs
    assert schema["output"] == outputs
    assert schema["deprecated"] is True
    assert schema["input"]["required"][inputs[0]][0] == ["some_model.safetensors"]
    assert registry.source(name) == "builtin"


@pytest.mark.parametrize(
    ("name", "inputs"),
    [
        ("ImageOnlyCheckpointLoader", {"ckpt_name": "svd.safetensors"}),
    ],
)
def test_running_fails_clearly(name: str, inputs: dict[str, str], run) -> None:
    with pytest.raises(LoaderNotAvailable) as caught:
        run(name, **inputs)
    message = str(caught.value)
    assert message.startswith(f"{name}: Loom cannot load")
    assert next(iter(inputs.values())) in message
