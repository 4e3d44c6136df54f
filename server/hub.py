"""The WebSocket hub: one session per clientId, job events to the client that queued the job, status to everyone.

The job worker calls `job_event`/`queue_changed` from its own thread; they only schedule work on the event loop
(`call_soon_threadsafe`), so the worker never waits on a socket. Each session has a bounded buffer drained by its
own task: when a client reads too slowly, droppable frames (previews, progress) go first, final messages never.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web

from engine.events import Event, JobFailed, JobInterrupted, JobStarted, JobSucceeded
from engine.jobs import JobQueue
from server.messages import PREVIEW, Frame, ProgressState, encode, executing_frame, status_frame, text

log = logging.getLogger("loom.hub")

BUFFER_FRAMES = 256  # per client; droppable frames beyond this are discarded
HARD_LIMIT_FRAMES = 10000  # a client this far behind on final messages is disconnected


class Session:
    def __init__(self, sid: str, ws: web.WebSocketResponse, limit: int = BUFFER_FRAMES) -> None:
        self.sid = sid
        self.ws = ws
        self.limit = limit
        self.buffer: deque[Frame] = deque()
        self.dropped = 0
        self.features: dict[str, Any] = {}
        self.previews = False  # binary previews: a front end asks for them in its feature_flags message
        self.closed = False
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain())

    def push(self, frame: Frame) -> None:
        if self.closed or (frame.type == PREVIEW and not self.previews):
            return
        if len(self.buffer) >= self.limit:
            if frame.droppable:
                self.dropped += 1
                return
            for i, queued in enumerate(self.buffer):
                if queued.droppable:
                    del self.buffer[i]
                    self.dropped += 1
                    break
            if len(self.buffer) >= HARD_LIMIT_FRAMES:
                log.warning("client %s is too far behind; closing its socket", self.sid)
                self.close()
                return
        self.buffer.append(frame)
        self._ready.set()

    def greet(self, frames: list[Frame]) -> None:
        """Put the greeting before whatever arrived during the handshake; it supersedes any status among that."""
        kept = [f for f in self.buffer if f.type != "status"]
        self.buffer = deque([*frames, *kept])
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self.buffer.clear()
        if self._task is not None:
            self._task.cancel()
        asyncio.get_running_loop().create_task(self.ws.close())

    async def _drain(self) -> None:
        try:
            while not self.ws.closed:
                if not self.buffer:
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                frame = self.buffer.popleft()
                if frame.data is not None:
                    await self.ws.send_bytes(frame.data)
                else:
                    await self.ws.send_str(frame.text or "")
        except (ConnectionError, RuntimeError):
            return

    async def wait_closed(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Hub:
    """Implements engine.jobs.JobListener for the server."""

    def __init__(self, jobs: JobQueue, feature_flags: dict[str, Any], previews_for_all: bool = False) -> None:
        """`previews_for_all` (`--preview-method` given): every client gets binary previews, not only those that
        ask; plain API clients that read every binary frame as an output image must not get them unasked."""
        self.jobs = jobs
        self.feature_flags = feature_flags
        self.previews_for_all = previews_for_all
        self.sessions: dict[str, Session] = {}
        self._progress: dict[str, ProgressState] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # ---- called from any thread ----

    def job_event(self, client_id: str | None, event: Event) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._dispatch, client_id, event)

    def queue_changed(self, remaining: int) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.broadcast, status_frame(remaining))

    def send(self, type_: str, data: Any, sid: str | None = None) -> None:
        """A message from outside the job flow (a node pack's `send_sync`): to client `sid`, or to everyone."""
        self.send_frame(text(type_, data), sid)

    def send_frame(self, frame: Frame, sid: str | None = None) -> None:
        """A ready frame (a pack's preview image) from outside the job flow: to client `sid`, or to everyone."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._deliver, sid, frame)

    # ---- on the event loop ----

    def _deliver(self, sid: str | None, frame: Frame) -> None:
        if sid is None:
            self.broadcast(frame)
        elif (session := self.sessions.get(sid)) is not None:
            session.push(frame)

    def broadcast(self, frame: Frame) -> None:
        for session in list(self.sessions.values()):
            session.push(frame)

    def _dispatch(self, client_id: str | None, event: Event) -> None:
        pid = event.prompt_id
        if isinstance(event, JobStarted):
            self._progress[pid] = ProgressState(pid)
        progress = self._progress.get(pid) or ProgressState(pid)
        frames = encode(event, progress)
        if isinstance(event, (JobSucceeded, JobFailed, JobInterrupted)):
            self._progress.pop(pid, None)
        if client_id is None:  # queued without a client id: everyone may watch it, as the ecosystem does
            for frame in frames:
                self.broadcast(frame)
            return
        session = self.sessions.get(client_id)
        if session is not None:
            for frame in frames:
                session.push(frame)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """`GET /ws?clientId=ID`: status on connect, the executing node of this client's running job, then events."""
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=1 << 20)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        old = self.sessions.get(sid)
        if old is not None:
            old.close()
        session = Session(sid, ws)
        session.previews = self.previews_for_all
        # registered before the handshake completes, so no event of a job queued right after connecting is lost
        self.sessions[sid] = session
        try:
            await ws.prepare(request)
            remaining = await asyncio.get_running_loop().run_in_executor(None, self.jobs.remaining)
            greeting = [status_frame(remaining, sid)]
            for running in self.jobs.running_jobs():
                if running.job.client_id == sid and running.node is not None:
                    greeting.append(executing_frame(running.job.prompt_id, running.node, running.display_node))
            session.greet(greeting)
            session.start()
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._client_message(session, msg.data)
        finally:
            if self.sessions.get(sid) is session:
                del self.sessions[sid]
            await session.wait_closed()
        return ws

    def _client_message(self, session: Session, raw: str) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if isinstance(message, dict) and message.get("type") == "feature_flags":
            data = message.get("data")
            session.features = data if isinstance(data, dict) else {}
            session.previews = True
            session.push(text("feature_flags", self.feature_flags))

    async def close(self) -> None:
        for session in list(self.sessions.values()):
            await session.ws.close()
            await session.wait_closed()
        self.sessions.clear()
