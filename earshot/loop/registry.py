"""A model registry: a folder of model versions and a ``current`` pointer that promote and rollback move.

Layout::

    registry/
      versions/<version id>/   one model folder each (config, safetensors weights, tokenizer)
      current                  the served version's id (written atomically)
      history.jsonl            every promotion and rollback, oldest first

A service started on the registry watches ``current`` and swaps to the new version when it moves.

Example:
    >>> registry = Registry("models")
    >>> version = registry.add("runs/candidate")
    >>> registry.promote(version)
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from earshot.files import atomic_folder, write_text_atomic
from earshot.model.modeling import is_model_folder, version_id


class RegistryError(ValueError):
    """A registry operation that cannot be done; the message says why and what to do."""


class Registry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.pointer = self.root / "current"
        self.history_file = self.root / "history.jsonl"

    def add(self, model_dir: str | Path) -> str:
        """Copy a model folder in under its version id (unchanged when already there); returns the id."""
        model_dir = Path(model_dir)
        if not is_model_folder(model_dir):
            raise RegistryError(f"{model_dir} is not a model folder: it has no config.json with an earshot section")
        version = version_id(model_dir)
        target = self.versions_dir / version
        if not target.is_dir():
            with atomic_folder(target) as work:
                for path in model_dir.iterdir():
                    # ONNX exports are rebuilt beside the model on first use; checkpoints are not the model.
                    if path.is_file():
                        shutil.copy2(path, work / path.name)
        return version

    def versions(self) -> list[str]:
        """Every stored version id, oldest first."""
        if not self.versions_dir.is_dir():
            return []
        found = [p for p in self.versions_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime)]

    def path(self, version: str) -> Path:
        folder = self.versions_dir / version
        if not folder.is_dir():
            raise RegistryError(f"no version {version!r} in {self.root}; it has {self.versions()}")
        return folder

    def current(self) -> str | None:
        """The promoted version's id, or None before the first promotion."""
        if not self.pointer.is_file():
            return None
        return self.pointer.read_text(encoding="utf-8").strip() or None

    def current_path(self) -> Path:
        version = self.current()
        if version is None:
            raise RegistryError(f"{self.root} has no current version: run `earshot promote VERSION --registry "
                                f"{self.root}` first")
        return self.path(version)

    def history(self) -> list[dict[str, Any]]:
        if not self.history_file.is_file():
            return []
        return [json.loads(line) for line in self.history_file.read_text(encoding="utf-8").splitlines() if line]

    def promote(self, version: str, note: dict[str, Any] | None = None) -> None:
        """Make ``version`` current (the registry's services swap to it) and record why."""
        self.path(version)
        self._move("promote", version, note or {})

    def rollback(self) -> str:
        """Go back to the version that was current before the last promotion; returns it."""
        stack: list[str] = []
        for entry in self.history():
            if entry["action"] == "promote":
                stack.append(entry["version"])
            elif stack:
                stack.pop()
        if len(stack) < 2:
            raise RegistryError(f"{self.root}: nothing to roll back to (promotions: {stack})")
        previous = stack[-2]
        self._move("rollback", previous, {"from": stack[-1]})
        return previous

    def _move(self, action: str, version: str, note: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        entry = {"action": action, "version": version, "previous": self.current(), "at": time.time(), **note}
        history = self.history_file.read_text(encoding="utf-8") if self.history_file.is_file() else ""
        write_text_atomic(self.history_file, history + json.dumps(entry) + "\n")
        write_text_atomic(self.pointer, version + "\n")
