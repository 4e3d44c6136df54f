"""Names Loom lacks the machinery for, importable so the packs that mention them load.

A placeholder never returns a made-up value: calling a missing function, or making an instance of a missing
class, raises HostFeatureMissing naming the host function and the node that called it. A pack imports, its pure
nodes run, and only the node that needs the missing machinery fails, with that message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from engine.context import current_context


class HostFeatureMissing(NotImplementedError):
    """A pack used a host function or class that Loom provides only by name."""


def fail(qualname: str) -> NoReturn:
    ctx = current_context()
    caller = f", which node {ctx.node_id} ({ctx.class_type}) called" if ctx is not None else ""
    raise HostFeatureMissing(f"Loom does not provide {qualname}{caller}: it has no equivalent of this ComfyUI internal")


def function(qualname: str) -> Callable[..., NoReturn]:
    def missing(*args: Any, **kwargs: Any) -> NoReturn:
        fail(qualname)

    module, _, name = qualname.rpartition(".")
    missing.__name__ = missing.__qualname__ = name
    missing.__module__ = module
    missing.__doc__ = f"Placeholder: Loom does not provide {qualname}; calling it raises HostFeatureMissing."
    return missing


def klass(qualname: str, bases: tuple[type, ...] = ()) -> type:
    """A class packs can subclass and test with isinstance; making one (or a subclass's) instance fails."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        fail(qualname)

    module, _, name = qualname.rpartition(".")
    return type(name, bases, {"__init__": __init__, "__module__": module, "__doc__": f"Placeholder for {qualname}."})


def fill(namespace: dict[str, Any], module: str, functions: Iterable[str] = (), classes: Iterable[str] = ()) -> None:
    """Define placeholder functions and classes in a shim module's namespace (names it defines really are kept)."""
    for name in functions:
        namespace.setdefault(name, function(f"{module}.{name}"))
    for name in classes:
        namespace.setdefault(name, klass(f"{module}.{name}"))
