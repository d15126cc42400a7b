"""Optional dependencies: imported when a feature needs them, with the extra that installs them named.

Example:
    >>> ray = require("ray", extra="ray", feature="--engine ray")
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(RuntimeError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """``module`` imported, or a MissingExtraError saying ``pip install 'earshot[extra]'``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise MissingExtraError(f"{feature} needs {module.split('.')[0]}, which is not installed ({error}): "
                                f"pip install 'earshot[{extra}]'") from None
