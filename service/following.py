"""What a service process loads from a model folder, kept current with a registry's promotions.

The single service and the model worker of a split service hold an ``EarshotModel``; the API
workers of a split service hold a ``ModelFront`` (tokenizer and heads, no weights). All of them
follow the registry the same way, so they are built on one ``Follower``.

Example:
    >>> follower = Follower(ModelFront.from_pretrained, folder=None)   # the shipped model, no registry
    >>> follower.current.version == version_id(DEFAULT_MODEL_DIR)
    True
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, Generic, Protocol, TypeVar

from earshot.loop.registry import Registry

logger = logging.getLogger("earshot.service")


class Versioned(Protocol):
    version: str | None


Loaded = TypeVar("Loaded", bound=Versioned)


class Follower(Generic[Loaded]):
    """``current``: what ``load`` made of the registry's current version (or of ``folder`` without a
    registry). With a registry, a thread checks its pointer every ``reload_seconds`` and swaps to a
    promoted version: load first, then replace the reference, so work in flight finishes on the old
    one and none is dropped."""

    def __init__(self, load: Callable[[Path | None], Loaded], folder: str | Path | None = None,
                 registry: Registry | None = None, reload_seconds: float = 2) -> None:
        self._load = load
        self.folder = Path(folder) if folder is not None else None
        self.registry = registry
        self.current: Loaded = load(registry.current_path() if registry else self.folder)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        if registry is not None:
            threading.Thread(target=self._follow, args=(reload_seconds,), name="earshot-registry",
                             daemon=True).start()

    def switch_to(self, version: str) -> Loaded:
        """Load ``version`` now (the model worker of a split service already serves it) and make it
        current; without a registry, the folder is read again. Returns what is current afterwards."""
        with self._lock:
            if self.current.version != version:
                loaded = self._load(self.registry.path(version) if self.registry else self.folder)
                if loaded.version != version:
                    raise RuntimeError(f"asked for model version {version}, but "
                                       f"{self.registry.root if self.registry else self.folder} holds {loaded.version}")
                self.current = loaded
            return self.current

    def _follow(self, reload_seconds: float) -> None:
        while not self._stop.wait(reload_seconds):
            version = self.registry.current()
            if version is None or version == self.current.version:
                continue
            try:
                self.switch_to(version)
            except Exception:  # a broken version must not take the service down: keep serving the old one
                logger.exception("could not load version %s from %s; still serving %s", version,
                                 self.registry.root, self.current.version)
                self._stop.wait(30)

    def close(self) -> None:
        self._stop.set()
