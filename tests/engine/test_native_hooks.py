"""Native hooks (fingerprint, validate) may ask for the host environment by declaring `env`."""

from __future__ import annotations

from dataclasses import dataclass

from engine.native import String, node
from engine.registry import NodeRegistry


@dataclass
class Env:
    marker: str


def _fingerprint(name: str, env: Env) -> str:
    return f"{env.marker}:{name}"


def _validate(name: str, env: Env) -> bool | str:
    return True if name == env.marker else f"{name!r} is not {env.marker!r}"


@node(outputs=["STRING"], fingerprint=_fingerprint, validate=_validate)
def EnvHooked(name: str = String("a"), other: str = String("b")) -> str:
    return name


def _plain_fingerprint(**inputs: str) -> str:
    return ",".join(sorted(inputs))


@node(outputs=["STRING"], fingerprint=_plain_fingerprint)
def PlainHooked(name: str = String("a")) -> str:
    return name


def test_hooks_declaring_env_receive_the_registry_environment() -> None:
    registry = NodeRegistry(Env("x"))
    registry.add_native(EnvHooked)
    spec = registry.get("EnvHooked")
    assert spec is not None and spec.fingerprint is not None and spec.validate is not None
    assert spec.fingerprint({"name": "n"}) == "x:n"
    assert spec.validate({"name": "x"}) is True
    assert spec.validate({"name": "y"}) == "'y' is not 'x'"


def test_validate_inputs_names_what_the_hook_checks_without_env() -> None:
    spec = EnvHooked.to_spec(Env("x"))
    assert spec.validate_inputs == frozenset({"name"})


def test_hooks_without_env_get_only_the_inputs() -> None:
    spec = PlainHooked.to_spec(Env("x"))
    assert spec.fingerprint is not None
    assert spec.fingerprint({"name": "n", "other": "o"}) == "name,other"
    assert spec.validate_inputs is None
