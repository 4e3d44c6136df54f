"""What the route handlers share: the configuration and the engine objects of one server (stored on the app)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from catalog.index import ModelIndex
from engine.environment import NodeEnvironment
from engine.folders import Folders
from engine.jobs import JobQueue
from engine.packs import PackSummary
from engine.registry import NodeRegistry
from server.activity import RequestActivity
from server.hub import Hub
from server.logs import LogRing
from server.users import UserFiles

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8188
    auth_token: str | None = None
    max_upload_bytes: int = 100 * 1024 * 1024
    max_prompt_bytes: int = 16 * 1024 * 1024
    max_image_pixels: int = 8192 * 8192
    web_root: Path = ROOT / "web" / "dist"
    workflows_root: Path = ROOT / "workflows"
    multi_user: bool = False  # `--multi-user`: the Comfy-User header picks the user folder
    preview_method: str | None = None  # `--preview-method`; None: previews only to clients that ask for them


class WorkerPool(Protocol):
    """A pool that runs the jobs in other processes (scaleout.pool.RayWorkerPool with `--workers ray`)."""

    def stats(self) -> list[dict[str, Any]]:
        """One entry per worker, joined to `GET /system_stats`."""
        ...

    def close(self) -> None:
        """Stop the workers when the server stops."""
        ...


@dataclass
class ServerState:
    """Built by the composition root's caller (cli/serve.py) from a runtime; the routes read it, never rebuild it."""

    config: ServerConfig
    registry: NodeRegistry
    folders: Folders
    jobs: JobQueue
    env: NodeEnvironment | None = None
    extensions: Mapping[str, Path] = field(default_factory=dict)  # pack name -> its front-end folder (WEB_DIRECTORY)
    packs: Sequence[PackSummary] | None = None  # each pack found; None: packs are disabled
    workers: WorkerPool | None = None  # the Ray pool with `--workers ray`
    models: ModelIndex | None = None  # the model index (/models/index); None in tests that need none
    hub: Hub = field(init=False)  # set by server.app.create_app
    users: UserFiles = field(init=False)
    logs: LogRing = field(default_factory=LogRing)  # recent log lines while the app runs (server.app attaches it)
    activity: RequestActivity = field(default_factory=RequestActivity)  # requests being answered (server.app counts)

    def __post_init__(self) -> None:
        self.users = UserFiles(self.folders.user, multi_user=self.config.multi_user)

    def feature_flags(self) -> dict[str, Any]:
        return {"supports_preview_metadata": False, "max_upload_size": self.config.max_upload_bytes}


STATE: web.AppKey[ServerState] = web.AppKey("loom_state", ServerState)
