"""Waiting in tests for work another thread or process does: poll a condition, fail after a generous limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 20, interval: float = 0.01) -> None:
    """Return once `predicate()` is true; raise TimeoutError when it is still false after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(interval)
