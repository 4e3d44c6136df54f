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


class _Placeholder(type):
    """Metaclass of placeholder classes: an attribute they lack is refused naming it (packs read constants off
    the reference's classes, `WrappersMP.OUTER_SAMPLE`); with `__loom_like__`, instances of those Loom classes
    count as instances of the placeholder itself (`isinstance(loom_vae, comfy.sd.VAE)`), not of a subclass."""

    def __instancecheck__(cls, obj: Any) -> bool:
        like = cls.__dict__.get("__loom_like__", ())
        return type.__instancecheck__(cls, obj) or bool(like and isinstance(obj, like))

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        from compat.host import refuse

        refuse(type.__getattribute__(cls, "__loom_qualname__"), name)


def klass(qualname: str, bases: tuple[type, ...] = (), like: tuple[type, ...] = ()) -> type:
    """A class packs can subclass and test with isinstance; making one (or a subclass's) instance fails. With
    `like`, instances of those Loom classes count as instances of it."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        fail(qualname)

    module, _, name = qualname.rpartition(".")
    body = {"__init__": __init__, "__module__": module, "__doc__": f"Placeholder for {qualname}."}
    body["__loom_qualname__"] = qualname
    if like:
        body["__loom_like__"] = like
    meta = _Placeholder if all(isinstance(b, _Placeholder) or type(b) is type for b in bases) else type
    return meta(name, bases, body)


def node_class(qualname: str) -> type:
    """A node class Loom lacks: a pack may subclass it, but the subclass is rejected at registration (its
    INPUT_TYPES fails naming the class) and running one fails the same way."""

    def input_types(cls: type) -> NoReturn:
        fail(qualname)

    cls = klass(qualname)
    cls.INPUT_TYPES = classmethod(input_types)  # type: ignore[attr-defined]
    return cls


class Namespace:
    """An object Loom lacks (the reference's prompt queue, user manager): each of its methods is a placeholder."""

    def __init__(self, qualname: str) -> None:
        self._qualname = qualname

    def __getattr__(self, name: str) -> Callable[..., NoReturn]:
        if name.startswith("__"):
            raise AttributeError(name)
        return function(f"{self._qualname}.{name}")


def fill(namespace: dict[str, Any], module: str, functions: Iterable[str] = (), classes: Iterable[str] = ()) -> None:
    """Define placeholder functions and classes in a shim module's namespace (names it defines really are kept)."""
    for name in functions:
        namespace.setdefault(name, function(f"{module}.{name}"))
    for name in classes:
        namespace.setdefault(name, klass(f"{module}.{name}"))
