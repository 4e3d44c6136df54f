"""Limits around importing one node pack: a time limit, a notice while it is slow, its prints kept off stdout,
and a last word in the log when it ends the process.

A pack that loops at import would stop start-up with no output, one that prints would corrupt `--json` output on
stdout, and one that calls `os._exit` would end Loom without a trace. `guarded(name, ...)` wraps the import so
that none of these goes unexplained:

- its stdout goes to stderr while it imports (the user still sees it; stdout stays for Loom's own output);
- after `slow_seconds` a line names the pack still importing;
- after `timeout` seconds `PackImportTimeout` (a BaseException, so a pack's `except Exception` cannot swallow it)
  is raised inside the import: by SIGALRM on the main thread, which also breaks a blocking sleep, or as an
  asynchronous exception on other threads, which stops pure-Python loops;
- `os._exit` writes the pack's name to stderr and the log before the process ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, NoReturn, TextIO

log = logging.getLogger("loom.packs")


class PackImportTimeout(BaseException):
    """A pack's import ran past its time limit."""


@contextlib.contextmanager
def guarded(name: str, timeout: float | None, slow_seconds: float, stream: TextIO | None = None) -> Iterator[None]:
    """Run the block as pack `name`'s import under the limits above; `timeout` None or <= 0 means no limit."""
    out = stream if stream is not None else sys.stderr
    slow = threading.Timer(max(slow_seconds, 0.0), _say, (out, f"still importing node pack {name!r}..."))
    slow.daemon = True
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(_report_exit(name, out))
        slow.start()
        stack.callback(slow.cancel)
        if timeout is not None and timeout > 0:
            stack.enter_context(_time_limit(name, timeout))
        yield


def _say(out: TextIO, line: str) -> None:
    with contextlib.suppress(Exception):
        out.write(line + "\n")
        out.flush()


@contextlib.contextmanager
def _report_exit(name: str, out: TextIO) -> Iterator[None]:
    real_exit = os._exit

    def reporting_exit(status: int) -> NoReturn:
        message = f"node pack {name!r} called os._exit({status}) while importing; Loom exits now"
        log.critical(message)
        _say(out, message)
        real_exit(status)

    os._exit = reporting_exit
    try:
        yield
    finally:
        os._exit = real_exit


@contextlib.contextmanager
def _time_limit(name: str, timeout: float) -> Iterator[None]:
    message = f"node pack {name!r} was still importing after {timeout:g} s (--pack-import-timeout)"
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        with _alarm(message, timeout):
            yield
    else:
        with _async_raise(message, timeout):
            yield


@contextlib.contextmanager
def _alarm(message: str, timeout: float) -> Iterator[None]:
    def on_alarm(signum: int, frame: Any) -> None:
        raise PackImportTimeout(message)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _async_raise(message: str, timeout: float) -> Iterator[None]:
    target = threading.get_ident()
    lock = threading.Lock()
    done = False

    class Raised(PackImportTimeout):  # an async exception is raised from its class, so the class holds the text
        def __init__(self) -> None:
            super().__init__(message)

    def fire() -> None:
        with lock:
            if not done:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(Raised))

    timer = threading.Timer(timeout, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            done = True
        timer.cancel()
