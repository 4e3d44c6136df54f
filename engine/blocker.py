"""Execution blockers: an output value that stops every node depending on it instead of feeding it."""

from __future__ import annotations


class ExecutionBlocker:
    """Return this as an output to skip the nodes downstream of it. With a message, the first node it blocks is
    reported with a warning; without one, the branch stops silently (how conditional branches are built)."""

    __slots__ = ("message",)

    def __init__(self, message: str | None = None) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"ExecutionBlocker({self.message!r})"
