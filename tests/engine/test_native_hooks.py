"""Native hooks (fingerprint, validate) may ask for the host environment by declaring `env`."""

from __future__ import annotations

from pathlib import Path

from engine.environment import NodeEnvironment
from engine.folders import Folders
from engine.native import String, node
from engine.registry import NodeRegistry


def env_named(marker: str) -> NodeEnvironment:
    """An environment told apart by its base folder's name (nothing is created on disk)."""
    return NodeEnvironment(Folders.under(Path("/nonexistent") / marker))


def _fingerprint(name: str, env: NodeEnvironment) -> str:
    return f"{env.folders.base.name}:{name}"


def _validate(name: str, env: NodeEnvironment) -> bool | str:
    marker = env.folders.base.name
    return True if name == marker else f"{name!r} is not {marker!r}"


@node(outputs=["STRING"], fingerprint=_fingerprint, validate=_validate)
def EnvHooked(name: str = String("a"), other: str = String("b")) -> str:
    return name


def _plain_fingerprint(**inputs: str) -> str:
    return ",".join(sorted(inputs))


@node(outputs=["STRING"], fingerprint=_plain_fingerprint)
def PlainHooked(name: str = String("a")) -> str:
    return name


def test_hooks_declaring_env_receive_the_registry_environment() -> None:
    registry = NodeRegistry(env_named("x"))
    registry.add_native(EnvHooked)
    spec = registry.get("EnvHooked")
    assert spec is not None and spec.fingerprint is not None and spec.validate is not None
    assert spec.fingerprint({"name": "n"}) == "x:n"
    assert spec.validate({"name": "x"}) is True
    assert spec.validate({"name": "y"}) == "'y' is not 'x'"


def test_validate_inputs_names_what_the_hook_checks_without_env() -> None:
    spec = EnvHooked.to_spec(env_named("x"))
    assert spec.validate_inputs == frozenset({"name"})


def test_hooks_without_env_get_only_the_inputs() -> None:
    spec = PlainHooked.to_spec(env_named("x"))
    assert spec.fingerprint is not None
    assert spec.fingerprint({"name": "n", "other": "o"}) == "name,other"
    assert spec.validate_inputs is None
