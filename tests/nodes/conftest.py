"""Fixtures for node tests: real folders in tmp_path, the built-in registry, and a way to call a node as the
executor does (through its NodeSpec's invoke, with a NodeContext)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import nodes
from diffusion.demo import write_demo_checkpoint
from engine.context import NodeContext, RunControl
from engine.environment import NodeEnvironment
from engine.folders import Folders
from engine.registry import NodeRegistry
from nodes.shared import node_environment


@pytest.fixture
def env(tmp_path: Path) -> NodeEnvironment:
    folders = Folders.under(tmp_path / "loom")
    folders.ensure()
    return node_environment(folders)


@pytest.fixture
def registry(env: NodeEnvironment) -> NodeRegistry:
    registry = NodeRegistry(env)
    nodes.register_builtin(registry)
    return registry


Run = Callable[..., Any]


@pytest.fixture
def run(registry: NodeRegistry, env: NodeEnvironment) -> Run:
    """`run("LatentFlip", samples=..., flip_method=...)` -> the node's raw return value."""

    def call(class_type: str, **inputs: Any) -> Any:
        spec = registry.get(class_type)
        assert spec is not None, class_type
        if spec.wants_context:
            inputs["__context__"] = NodeContext(
                prompt_id="p",
                node_id="1",
                display_node="1",
                class_type=class_type,
                emit=lambda event: None,
                control=RunControl(),
                env=env,
            )
        return spec.invoke(inputs)

    return call


# The demo checkpoint in a module-scoped environment, for the model-facing node tests.


@pytest.fixture(scope="module")
def menv(tmp_path_factory: pytest.TempPathFactory) -> NodeEnvironment:
    folders = Folders.under(tmp_path_factory.mktemp("loom"))
    folders.ensure()
    write_demo_checkpoint(folders.model_dirs("checkpoints")[0])
    return node_environment(folders, force_cpu=True)


@pytest.fixture(scope="module")
def mreg(menv: NodeEnvironment) -> NodeRegistry:
    registry = NodeRegistry(menv)
    nodes.register_builtin(registry)
    return registry


class Runner:
    """Calls nodes as the executor does, collecting the events they emit."""

    def __init__(self, registry: NodeRegistry, env: NodeEnvironment) -> None:
        self.registry, self.env, self.events = registry, env, []

    def __call__(self, class_type: str, **inputs: Any) -> Any:
        spec = self.registry.get(class_type)
        assert spec is not None, class_type
        if spec.wants_context:
            inputs["__context__"] = NodeContext(
                "p", "1", "1", class_type, self.events.append, RunControl(), env=self.env
            )
        return spec.invoke(inputs)
