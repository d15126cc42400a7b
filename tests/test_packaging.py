"""Installed, earshot adds one import name: `earshot` (model, training and service live under it)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from importlib.metadata import distributions
from pathlib import Path

# What setuptools itself installs for an editable install: a .pth file and the finder it loads.
_EDITABLE_MACHINERY = ("__editable__", "__pycache__")


def test_the_installed_distribution_has_one_top_level_name() -> None:
    # The install in this interpreter's site-packages, not metadata a build may have left in the checkout.
    (dist,) = distributions(name="earshot", path=[sysconfig.get_paths()["purelib"]])
    assert dist.read_text("top_level.txt").split() == ["earshot"]
    tops = {Path(str(f)).parts[0] for f in dist.files or []}
    tops = {t for t in tops if not t.startswith(_EDITABLE_MACHINERY) and not t.endswith(".dist-info")
            and not t.startswith("..")}  # console scripts live outside site-packages
    assert tops <= {"earshot"}


def test_model_training_and_service_import_only_under_earshot(tmp_path: Path) -> None:
    """Run from a folder other than the checkout, where the root folders are not on sys.path."""
    def imports(name: str) -> bool:
        return subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True).returncode == 0

    assert all(imports(f"earshot.{name}") for name in ("model", "training", "service", "cli"))
    assert not any(imports(name) for name in ("model", "training", "service"))
