"""The host environment handed to nodes (`ctx.env`): folders and the model manager."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from engine.folders import Folders


@dataclass(eq=False)
class NodeEnvironment:
    """Built once by `cli.runtime.build_runtime`. The model manager is created on first use, so that starting
    the server imports no torch."""

    folders: Folders
    force_cpu: bool = False
    preview_method: str = "auto"
    _models: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def models(self) -> Any:
        """The `diffusion.memory.ModelManager` (device and dtype policy, on/off-device moves)."""
        with self._lock:
            if self._models is None:
                from diffusion.memory import ModelManager

                self._models = ModelManager.create(force_cpu=self.force_cpu)
            return self._models

    @property
    def previews(self) -> bool:
        return self.preview_method != "none"
