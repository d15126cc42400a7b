"""One way to write a file or a folder atomically and one way to hash, for every part of earshot.

A reader (a service, a resumed run, another worker) must never see half a file: everything is written
under a temporary name beside its target, flushed to disk, and renamed over the target only when
complete. A crash at any moment leaves the old file or the new one, never a mix.

Example:
    >>> with atomic_path(Path("metrics.json")) as tmp:
    ...     tmp.write_text("{}")
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_BLOCK = 1 << 20


@contextmanager
def atomic_path(target: Path | str, mode: int = 0o644) -> Iterator[Path]:
    """A temporary path beside ``target`` that replaces it when the block ends without an error.

    The file is fsynced before the rename and made ``mode`` (mkstemp and safetensors create 0600
    files; a model folder or a scored file is meant to be read by others).
    """
    target = Path(target)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(target: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def atomic_folder(target: Path | str) -> Iterator[Path]:
    """A temporary folder beside ``target`` that replaces it (whole) when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        yield work
        for path in work.rglob("*"):
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def sha256(*sources: Path | bytes | str) -> str:
    """Hex SHA-256 of files, folders (their files in path order), bytes and strings, in the order given.

    Example:
        >>> sha256(b"abc") == sha256("abc")
        True
    """
    digest = hashlib.sha256()
    for source in sources:
        if isinstance(source, Path):
            files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
            for file in files:
                with open(file, "rb") as handle:
                    for block in iter(lambda: handle.read(_BLOCK), b""):
                        digest.update(block)
        else:
            digest.update(source.encode("utf-8") if isinstance(source, str) else source)
    return digest.hexdigest()
