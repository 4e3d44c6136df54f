"""The server's recent log lines: a bounded in-memory ring fed by the logging module, read by `/internal/logs` and
pushed as WebSocket `logs` messages to the clients that subscribed (a front end's logs panel)."""

from __future__ import annotations

import logging
import shutil
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
MAX_SUBSCRIBERS = 64


def terminal_size() -> dict[str, int]:
    cols, rows = shutil.get_terminal_size()
    return {"cols": cols, "rows": rows}


class LogRing(logging.Handler):
    """Keeps the last `capacity` log lines as `{t, m}` (ISO time, message with its newline); each new line also
    goes to `on_entry` with the client ids subscribed to it."""

    def __init__(self, capacity: int = 1000) -> None:
        super().__init__(level=logging.INFO)
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self._entries: deque[dict[str, str]] = deque(maxlen=capacity)
        self._subscribers: dict[str, None] = {}
        self._guard = threading.Lock()
        self.on_entry: Callable[[dict[str, str], list[str]], None] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = {"t": datetime.fromtimestamp(record.created).isoformat(), "m": self.format(record) + "\n"}
        except Exception:
            self.handleError(record)
            return
        with self._guard:
            self._entries.append(entry)
            subscribers = list(self._subscribers)
        if subscribers and self.on_entry is not None:
            self.on_entry(entry, subscribers)

    def entries(self) -> list[dict[str, str]]:
        with self._guard:
            return list(self._entries)

    def text(self) -> str:
        return "".join(f"{e['t']} - {e['m']}" for e in self.entries())

    def raw(self) -> dict[str, Any]:
        return {"entries": self.entries(), "size": terminal_size()}

    def subscribe(self, client_id: str, enabled: bool) -> None:
        """Start or stop sending new lines to `client_id`; the oldest subscription goes past MAX_SUBSCRIBERS."""
        with self._guard:
            self._subscribers.pop(client_id, None)
            if enabled:
                self._subscribers[client_id] = None
                while len(self._subscribers) > MAX_SUBSCRIBERS:
                    del self._subscribers[next(iter(self._subscribers))]

    def subscribers(self) -> list[str]:
        with self._guard:
            return list(self._subscribers)
