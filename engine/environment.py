"""The host environment handed to nodes (`ctx.env`) and to their hooks: folders, device policy, the model store.

The engine only passes it along and frees models through it; it never imports what makes the models (torch,
diffusers): the composition root hands in a factory that does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.folders import Folders


class ModelStore(Protocol):
    """What the engine asks of the host's model manager (diffusion.memory.ModelManager): drop every loaded model."""

    def unload_all(self) -> None: ...


ModelStoreFactory = Callable[[bool], Any]
"""Makes the model manager, given `force_cpu`; called once, on first use, so that starting the server imports no
torch. Returns the host's manager (typed by the host: the engine only calls `ModelStore` methods on it)."""


class NoModelStore(RuntimeError):
    """A node asked for models in an environment built without a model store (a test or a tool without models)."""


@dataclass(eq=False)
class NodeEnvironment:
    """Built once by the composition root (`runtime.build.build_runtime`) and shared by every node run."""

    folders: Folders
    force_cpu: bool = False
    preview_method: str = "auto"
    model_store: ModelStoreFactory | None = field(default=None, repr=False)
    _models: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def models(self) -> Any:
        """The host's model manager, created on first use."""
        with self._lock:
            if self._models is None:
                if self.model_store is None:
                    raise NoModelStore("this environment has no model store; it cannot load models")
                self._models = self.model_store(self.force_cpu)
            return self._models

    @property
    def previews(self) -> bool:
        """Whether samplers should send latent previews (`--preview-method none` turns them off)."""
        return self.preview_method != "none"

    def unload_models(self) -> None:
        """Drop every loaded model; nothing to do when no model was ever loaded (and torch never imported)."""
        with self._lock:
            store: ModelStore | None = self._models
        if store is not None:
            store.unload_all()
